"""Sentence similarity against a ``sentences`` list, and the default platform-circumvention
list at its shipped threshold (measured on the eval set next to the training data)."""

from __future__ import annotations

import json
from pathlib import Path

from moderation.defaults import SIMILARITY_THRESHOLD as SHIPPED_THRESHOLD
from moderation.defaults import default_lists
from moderation.detectors.base import DetectContext
from moderation.detectors.similarity import SimilarityDetector
from moderation.rules import Condition, WordList, parse_list
from tests.moderation.conftest import build_message

LISTS = {wl.id: wl for wl in (parse_list(b) for b in default_lists())}
COND = Condition("similarity", ("text",), list_id="platform-circumvention")
EVAL = (
    Path(__file__).resolve().parents[3]
    / "moderation/training/data/platform_circumvention_eval.jsonl"
)
DETECTOR = SimilarityDetector()


async def score(text: str, lists: dict[str, WordList] = LISTS, cond: Condition = COND) -> float:
    found = await DETECTOR.detect(build_message(text), cond, DetectContext(lists=lists))
    assert len(found) == 1 and found[0].category == cond.list_id
    return found[0].confidence


async def test_platform_circumvention_eval_set() -> None:
    rows = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines()]
    caught = {r["text"]: await score(r["text"]) >= SHIPPED_THRESHOLD for r in rows}
    positives = [r["text"] for r in rows if r["label"] == 1]
    negatives = [r["text"] for r in rows if r["label"] == 0]
    assert not [t for t in negatives if caught[t]]  # precision 1.0 on the hard negatives
    assert sum(caught[t] for t in positives) >= 0.5 * len(positives)  # measured 0.52


async def test_paraphrases_caught_and_chat_passes() -> None:
    assert await score("can we continue on whatsapp? text me there") >= SHIPPED_THRESHOLD
    assert await score("pay me through bank transfer instead of the website") >= SHIPPED_THRESHOLD
    for text in ("the build is green again", "see you at lunch", "I love this song"):
        assert await score(text) < 0.5


async def test_edited_list_is_used_and_reason_names_sentence() -> None:
    wl = WordList("mine", "mine", "sentences", ("the password for the vault is",))
    cond = Condition("similarity", ("text",), list_id="mine")
    found = await DETECTOR.detect(
        build_message("here is the vault password"), cond, DetectContext(lists={"mine": wl})
    )
    assert found[0].confidence >= 0.6 and "the password for the vault is" in found[0].reason
    edited = WordList("mine", "mine", "sentences", ("pizza toppings",))
    assert await score("here is the vault password", {"mine": edited}, cond) < 0.5


async def test_missing_or_wrong_kind_list_gives_nothing() -> None:
    keywords = WordList("k", "k", "keywords", ("x",))
    cond = Condition("similarity", ("text",), list_id="k")
    assert (
        await DETECTOR.detect(build_message("x"), cond, DetectContext(lists={"k": keywords})) == []
    )
    assert await DETECTOR.detect(build_message("x"), cond, DetectContext()) == []
    assert await score("") == 0.0
