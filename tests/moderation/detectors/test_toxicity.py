"""The local toxicity detector at its shipped thresholds: texts it must catch, hard negatives
it must pass, every category reported, per-category thresholds, batching."""

from __future__ import annotations

import asyncio

import pytest

from moderation.defaults import TOXICITY_THRESHOLDS as SHIPPED_THRESHOLDS
from moderation.detectors.base import DetectContext
from moderation.detectors.toxicity import ToxicityDetector
from moderation.engine import Engine
from moderation.rules import TOXICITY_CATEGORIES, Condition, parse_rule
from moderation.types import VerdictStatus
from tests.moderation.conftest import build_message

TOX = Condition("toxicity", ("text",))
DETECTOR = ToxicityDetector()

#: (category that must reach its shipped threshold, text); none of these are training rows.
CAUGHT = [
    ("insult", "you are a brainless moron and nobody wants you here"),
    ("insult", "what a pathetic loser, get lost"),
    ("insult", "you're so stupid it's painful to read your messages"),
    ("insult", "du bist ein Vollidiot"),
    ("toxicity", "you're a useless idiot"),
    ("obscene", "holy shit, what the fuck happened"),
    ("identity_attack", "immigrants are parasites who should be thrown out"),
    ("identity_attack", "gay people are disgusting and sick"),
    ("threat", "I will find where you live and kill you"),
    ("threat", "I'm going to break your neck when I see you"),
    ("violence", "I'm going to break your neck when I see you"),
    ("sexual", "send me naked pictures of yourself right now"),
    ("sexual", "I want to fuck you so hard tonight"),
    ("self_harm", "I want to kill myself tonight"),
    ("self_harm", "what's the easiest way to end my life"),
    ("self_harm", "I've been cutting my wrists again"),
    ("severe_toxicity", "fuck you, you worthless piece of shit, I hope you die"),
]

#: Hard negatives: violent-sounding words, news, medicine, sex education, groups, fiction,
#: support. None may reach any shipped threshold.
PASSED = [
    "how do I kill a python process?",
    "the news says two people died in a shooting downtown",
    "I'm dying to see the new movie",
    "muslims in our town organised a charity run",
    "gay marriage was legalised in 2015 in the US",
    "women's football is getting more popular every year",
    "sex education helps teenagers make safer choices",
    "my doctor said the biopsy came back clean",
    "the villain in the novel murders the king",
    "we crushed the other team 5-0 yesterday",
    "this game is brutal, I died ten times on the first boss",
    "let's shoot for a Friday release",
    "I cut my finger chopping onions",
    "the rooster woke us at 5am",
    "if you are thinking of suicide, please call a helpline, you matter",
    "I disagree with you, but I respect your opinion",
    "can you review my pull request please",
    "the meeting is cancelled, sorry for the short notice",
    "my grandma turns 90 today!",
    "I hate mondays so much",
]


async def scores(text: str) -> dict[str, float]:
    found = await DETECTOR.detect(build_message(text), TOX, DetectContext())
    return {d.category: d.confidence for d in found}


@pytest.mark.parametrize(("category", "text"), CAUGHT)
async def test_caught_at_shipped_threshold(category: str, text: str) -> None:
    got = await scores(text)
    assert got[category] >= SHIPPED_THRESHOLDS[category], got


@pytest.mark.parametrize("text", PASSED)
async def test_hard_negatives_pass(text: str) -> None:
    got = await scores(text)
    fired = {c: s for c, s in got.items() if s >= SHIPPED_THRESHOLDS[c]}
    assert not fired, fired


async def test_reports_every_category_in_range() -> None:
    for text in ("hello there", "", "   "):
        found = await DETECTOR.detect(build_message(text), TOX, DetectContext())
        assert [d.category for d in found] == list(TOXICITY_CATEGORIES)
        assert all(0.0 <= d.confidence <= 1.0 and d.detector == "toxicity" for d in found)
    empty = await scores("")
    assert set(empty.values()) == {0.0}


async def test_concurrent_messages_are_batched_with_same_results() -> None:
    texts = [t for _, t in CAUGHT[:8]] + PASSED[:8]
    alone = [await scores(t) for t in texts]
    together = await asyncio.gather(*(scores(t + " ") for t in texts))
    for a, b in zip(alone, together, strict=True):
        assert all(abs(a[c] - b[c]) < 1e-3 for c in a)


async def test_per_category_thresholds_in_a_rule() -> None:
    def rule(thresholds: dict[str, float]) -> object:
        return parse_rule(
            {
                "id": "ai",
                "conditions": [
                    {
                        "kind": "toxicity",
                        "messageTypes": ["text"],
                        "categories": ["insult", "threat"],
                        "threshold": 0.99,
                        "thresholds": thresholds,
                    }
                ],
                "actions": ["block"],
            }
        )

    message = build_message("you are a brainless moron and nobody wants you here")
    detectors = {"toxicity": DETECTOR}
    strict = Engine([rule({"threat": 0.5})], {}, detectors)  # insult keeps 0.99
    assert (await strict.evaluate(message)).status is VerdictStatus.APPROVED
    loose = Engine([rule({"insult": 0.8})], {}, detectors)
    verdict = await loose.evaluate(message)
    assert verdict.status is VerdictStatus.DISAPPROVED
    assert (
        verdict.matches[0].reason.startswith("insult ") and ">= 0.80" in verdict.matches[0].reason
    )


def test_categories_and_thresholds_are_validated() -> None:
    from moderation.errors import RuleError
    from moderation.rules import rule_to_json

    def body(**cond: object) -> dict[str, object]:
        condition = {"kind": "toxicity", "messageTypes": ["text"], **cond}
        return {"id": "r", "conditions": [condition], "actions": ["flag"]}

    ok = parse_rule(body(categories=["insult"], thresholds={"insult": 0.7, "threat": 1}))
    assert ok.conditions[0].threshold_for("insult", 0.5) == 0.7
    assert ok.conditions[0].threshold_for("threat", 0.5) == 1.0
    assert ok.conditions[0].threshold_for("sexual", 0.5) == 0.5
    assert rule_to_json(ok)["conditions"] == [
        {
            "kind": "toxicity",
            "messageTypes": ["text"],
            "categories": ["insult"],
            "thresholds": {"insult": 0.7, "threat": 1.0},
        }
    ]
    assert parse_rule(rule_to_json(ok)) == ok
    for bad, field in (
        (body(categories=["rudeness"]), "conditions[0].categories[0]"),
        (body(thresholds={"rudeness": 0.5}), "conditions[0].thresholds.rudeness"),
        (body(thresholds={"insult": 2}), "conditions[0].thresholds.insult"),
        (body(thresholds=[0.5]), "conditions[0].thresholds"),
    ):
        with pytest.raises(RuleError) as err:
            parse_rule(bad)
        assert err.value.field == field
