"""Pattern lists: matches, allow-list, and catastrophic patterns bounded by the time limit."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.patterns import PatternDetector
from moderation.errors import RuleError
from moderation.rules import Condition, WordList, parse_list
from moderation.types import MessageView

Make = Callable[..., MessageView]

COND = Condition("patterns", ("text",), list_id="p")


def ctx(*items: str, allow: tuple[str, ...] = ()) -> DetectContext:
    return DetectContext(lists={"p": WordList("p", "p", "patterns", items, allow)})


@pytest.mark.parametrize(
    ("patterns", "text", "matched"),
    [
        ((r"\bbuy\s+now\b",), "BUY   now!!", True),
        ((r"\bbuy\s+now\b",), "buyer nowhere", False),
        (
            (r"free\s+crypto",),
            "\uff46\uff52\uff45\uff45 crypto",
            True,
        ),  # folded text is searched too
        ((r"\d{4}-\d{4}-\d{4}-\d{4}",), "card 1234-5678-9012-3456", True),
        ((r"x", r"y"), "nothing", False),
    ],
)
async def test_patterns(
    make_message: Make, patterns: tuple[str, ...], text: str, matched: bool
) -> None:
    found = await PatternDetector().detect(make_message(text), COND, ctx(*patterns))
    assert bool(found) is matched
    assert all(d.category == "p" and d.confidence == 1.0 for d in found)


async def test_allow_list(make_message: Make) -> None:
    found = await PatternDetector().detect(
        make_message("visit example.com"), COND, ctx(r"\w+\.com", allow=("example.com",))
    )
    assert found == []


async def test_catastrophic_pattern_returns_within_limit(
    make_message: Make, caplog: pytest.LogCaptureFixture
) -> None:
    detector = PatternDetector(timeout=0.05)
    text = "a" * 28 + "!"
    start = time.perf_counter()
    found = await detector.detect(make_message(text), COND, ctx(r"(a+)+$", r"(a|aa)+$", "!"))
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0
    assert [d.reason.startswith("pattern '!'") for d in found] == [True]


@pytest.mark.parametrize(
    ("items", "field"),
    [
        (["ok", "(unclosed"], "items[1]"),
        (["[z-a]"], "items[0]"),
        (["fine", "also fine", "*bad"], "items[2]"),
    ],
)
def test_bad_patterns_rejected_with_index(items: list[str], field: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_list({"id": "p", "name": "p", "kind": "patterns", "items": items})
    assert info.value.field == field
