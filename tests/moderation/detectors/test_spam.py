"""Spam behaviour: repeats across conversations, bursts, link-heavy texts."""

from __future__ import annotations

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.spam import SpamDetector, scaled
from moderation.rules import Condition
from moderation.types import Detection, MessageView, ReceiverView, UserView

T0 = 1_764_000_000
SPAM = Condition("spam", ("text",))
ALICE = UserView("alice", "Alice", "user", (), 0)


def build_message(text: str, *, id: int, sent_at: int, receiver: str = "bob") -> MessageView:
    """A text from alice to ``receiver``."""
    to = ReceiverView("user", receiver, receiver, (), None, 0)
    return MessageView(
        id, f"alice_user_{receiver}", "message", "text", text, None, ALICE, to, sent_at
    )


def history(texts: list[str], *, every: int = 60) -> list[MessageView]:
    """The sender's earlier messages, oldest first, ``every`` seconds apart, ending before T0."""
    n = len(texts)
    return [
        build_message(t, id=i + 1, sent_at=T0 - (n - i) * every, receiver=f"r{i}")
        for i, t in enumerate(texts)
    ]


async def scores(
    text: str, recent: list[MessageView], condition: Condition = SPAM
) -> dict[str, Detection]:
    message = build_message(text, id=999, sent_at=T0)
    found = await SpamDetector().detect(message, condition, DetectContext(sender_recent=recent))
    return {d.category: d for d in found}


@pytest.mark.parametrize(
    ("text", "earlier", "spam"),
    [
        ("Buy cheap watches at my shop", ["Buy cheap watches at my shop"] * 2, True),
        (
            "BUY cheap watches at my shop!!",
            ["buy cheap watches at my shop", "Buy  cheap watches at my shop."],
            True,
        ),
        (
            "Buy cheap watches at my shop now",
            ["Buy cheap watches at my shop", "Buy cheap watches at my shop!"],
            True,
        ),
        ("Buy cheap watches at my shop", ["Buy cheap watches at my shop"], False),
        (
            "Buy cheap watches at my shop",
            ["How are you doing today?", "See you at the party"],
            False,
        ),
        ("ok", ["ok", "ok", "ok", "ok"], False),  # short texts never count
        ("thanks a lot!", ["thanks!", "thank you"], False),
    ],
)
async def test_repeat(text: str, earlier: list[str], spam: bool) -> None:
    got = await scores(text, history(earlier))
    assert (got["repeat"].confidence >= 0.5) is spam


async def test_repeat_window_respected() -> None:
    old = history(["Buy cheap watches at my shop"] * 5, every=3600)
    got = await scores("Buy cheap watches at my shop", old)
    assert got["repeat"].confidence < 0.5


@pytest.mark.parametrize(
    ("count", "seconds_apart", "spam"),
    [(7, 1, True), (6, 1, False), (10, 5, False), (20, 0, True)],
)
async def test_burst(count: int, seconds_apart: int, spam: bool) -> None:
    recent = history([f"message number {i}" for i in range(count)], every=seconds_apart)
    got = await scores("one more different thing", recent)
    assert (got["burst"].confidence >= 0.5) is spam


@pytest.mark.parametrize(
    ("text", "spam"),
    [
        ("https://a.example/x http://b.example/y www.c.example", True),
        ("go to cheap.ru, cheap.xyz and cheap.top now", True),
        ("see https://docs.python.org/3/", False),
        ("no links here", False),
    ],
)
async def test_links(text: str, spam: bool) -> None:
    got = await scores(text, [])
    assert (got["links"].confidence >= 0.5) is spam


async def test_condition_params_override_defaults() -> None:
    strict = Condition("spam", ("text",), params=(("repeatThreshold", 2), ("minLength", 0)))
    got = await scores("hi there", history(["hi there"]), strict)
    assert got["repeat"].confidence >= 0.5
    burst = Condition("spam", ("text",), params=(("burstCount", 3), ("burstSeconds", 5)))
    got = await scores("x", history(["a", "b"], every=1), burst)
    assert got["burst"].confidence >= 0.5


def test_scaled() -> None:
    assert [scaled(c, 3) for c in (1, 2, 3, 5, 9)] == [0.0, 0.25, 0.5, 1.0, 1.0]
    assert scaled(3, 3, start=0) == 0.5


async def test_across_conversations_counts_other_conversations_only() -> None:
    across = Condition("spam", ("text",), params=(("acrossConversations", True),))
    text = "Earn 500 dollars a day from home, ask me how"
    # The same text again and again to one peer (a chatty user, or a load script) is fine.
    same_peer = [build_message(text, id=i, sent_at=T0 - 60 + i) for i in range(1, 6)]
    assert (await scores(text, same_peer, across))["repeat"].confidence < 0.5
    # Sent to two other people before this one: three conversations reach the limit.
    spread = history([text, text])
    hit = (await scores(text, spread, across))["repeat"]
    assert hit.confidence >= 0.5 and "3 conversations" in hit.reason
    # The plain counter, for comparison, counts the repeats to one peer.
    assert (await scores(text, same_peer))["repeat"].confidence >= 0.5
