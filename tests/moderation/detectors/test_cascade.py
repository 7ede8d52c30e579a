"""The heads' cascade (on with the engine's ``cascade``; off by default): the lexical stage
settles clear texts without the encoder, the rest (and every condition with a low threshold)
get the encoder; the engine may then judge a settled text on the send path; results are cached
per text, boundedly. Off, every text gets the full model."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from moderation.defaults import local_ai_default_rules
from moderation.detectors.base import DetectContext
from moderation.detectors.cascade import STAGE_ENCODER, STAGE_LEXICAL, HeadResult, ScoreCache
from moderation.detectors.heads import SETTLE_LEVEL, SETTLED_CAP
from moderation.detectors.lexical import MASK, buckets, ngrams
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.scam import ScamDetector
from moderation.detectors.toxicity import ToxicityDetector
from moderation.engine import Engine
from moderation.rules import Condition, Rule, parse_rule
from moderation.types import VerdictStatus
from tests.moderation.conftest import build_message

#: Everyday chat the lexical stage must settle (none of these are training rows).
CLEAR = [
    "can someone send me the slides from this morning's meeting?",
    "the new update fixed the login bug, thanks team",
    "lunch at 12?",
    "ok see you tomorrow",
]
#: Harmful texts the lexical stage must not settle: the encoder decides them.
HARMFUL = [
    ("insult", "you are a brainless moron and nobody wants you here"),
    ("threat", "I will find where you live and kill you"),
    ("self_harm", "I want to kill myself tonight"),
    ("identity_attack", "immigrants are parasites who should be thrown out"),
]


def shipped_rules(enabled: bool = True) -> list[Rule]:
    """The shipped ``ai-toxicity`` and ``ai-harmful-content`` rules (their thresholds)."""
    bodies = [
        r for r in local_ai_default_rules() if r["id"] in ("ai-toxicity", "ai-harmful-content")
    ]
    return [parse_rule({**b, "enabled": enabled}) for b in bodies]


def condition_of(rule: Rule) -> Condition:
    return rule.conditions[0]


@pytest.fixture
def models() -> ModelRegistry:
    """A fresh registry: its score cache and encoder are this test's alone."""
    return ModelRegistry()


def encoder_loaded(models: ModelRegistry) -> bool:
    return models.encoder()._model is not None


async def test_clear_texts_are_settled_without_the_encoder(models: ModelRegistry) -> None:
    detector = ToxicityDetector(models)
    for rule in shipped_rules():
        for text in CLEAR:
            assert detector.settles(text, condition_of(rule)), text
            found = await detector.detect(
                build_message(text), condition_of(rule), DetectContext(cascade=True)
            )
            assert all(d.confidence <= SETTLED_CAP for d in found), found
            assert all("lexical stage" in d.reason for d in found), found
    assert not encoder_loaded(models)
    assert models.scores.counts["lexical"] == len(CLEAR)
    assert models.scores.counts["encoder"] == 0


@pytest.mark.parametrize(("category", "text"), HARMFUL)
async def test_harmful_texts_go_to_the_encoder_and_are_caught(
    models: ModelRegistry, category: str, text: str
) -> None:
    detector = ToxicityDetector(models)
    rule = next(r for r in shipped_rules() if category in condition_of(r).categories)
    condition = condition_of(rule)
    assert not detector.settles(text, condition)
    found = {
        d.category: d
        for d in await detector.detect(build_message(text), condition, DetectContext(cascade=True))
    }
    hit = found[category]
    threshold = condition.threshold_for(category, 0.5)
    assert hit.confidence >= threshold
    assert hit.reason == f"{category} {hit.confidence:.2f} >= {threshold:.2f} (encoder stage)"


async def test_a_low_threshold_always_gets_the_encoder(models: ModelRegistry) -> None:
    detector = ToxicityDetector(models)
    low = Condition("toxicity", ("text",), threshold=SETTLE_LEVEL - 0.3)
    assert not detector.settles(CLEAR[0], low)
    found = await detector.detect(build_message(CLEAR[0]), low, DetectContext(cascade=True))
    assert all("encoder stage" in d.reason for d in found)
    # the encoder's result is cached and now also serves the shipped thresholds
    shipped = condition_of(shipped_rules()[0])
    assert detector.settles(CLEAR[0], shipped)
    again = await detector.detect(build_message(CLEAR[0]), shipped, DetectContext(cascade=True))
    assert all("encoder stage" in d.reason for d in again)
    assert models.scores.counts == {"hits": 2, "lexical": 0, "encoder": 1}  # settles, detect


async def test_toxicity_and_scam_share_one_result_per_text(models: ModelRegistry) -> None:
    toxicity, scam = ToxicityDetector(models), ScamDetector(models)
    scam_rule = parse_rule(next(r for r in local_ai_default_rules() if r["id"] == "ai-scam"))
    message = build_message(CLEAR[1])
    await toxicity.detect(message, condition_of(shipped_rules()[0]), DetectContext(cascade=True))
    await scam.detect(message, condition_of(scam_rule), DetectContext(cascade=True))
    assert models.scores.counts == {"hits": 1, "lexical": 1, "encoder": 0}


async def test_the_engine_judges_settled_texts_inline(models: ModelRegistry) -> None:
    detectors = {"toxicity": ToxicityDetector(models)}
    engine = Engine(shipped_rules(), {}, detectors, cascade=True)
    assert not engine.inline_for("message", "text")
    assert engine.inline_for("message", "text", CLEAR[0])
    assert not engine.inline_for("message", "text", HARMFUL[0][1])
    clean = await engine.evaluate(build_message(CLEAR[0]))
    assert clean.status is VerdictStatus.APPROVED and not clean.matches
    held = await engine.evaluate(build_message(HARMFUL[0][1]))
    assert held.status is VerdictStatus.REVIEW
    assert held.matches[0].rule_id == "ai-toxicity"
    assert "(encoder stage)" in held.matches[0].reason


async def test_without_the_cascade_every_text_gets_the_full_model(
    models: ModelRegistry,
) -> None:
    # the default: the scores (and so the ranking) are the full model's, and a message under
    # the AI rules is judged in the pipeline, never on the send path
    detectors = {"toxicity": ToxicityDetector(models)}
    engine = Engine(shipped_rules(), {}, detectors)
    assert not engine.cascade
    assert not engine.inline_for("message", "text", CLEAR[0])
    clean = await engine.evaluate(build_message(CLEAR[0]))
    assert clean.status is VerdictStatus.APPROVED
    assert all(d.reason == "encoder stage" for d in clean.detections)
    # one encoder pass; the second rule finds it in the cache
    assert models.scores.counts == {"hits": 1, "lexical": 0, "encoder": 1}
    # a lexical-stage result cached while the cascade was on is not used without it
    detector = detectors["toxicity"]
    assert detector.settles(CLEAR[1], condition_of(shipped_rules()[0]))
    found = await detector.detect(
        build_message(CLEAR[1]), condition_of(shipped_rules()[0]), DetectContext()
    )
    assert all(d.reason == "encoder stage" for d in found)


def test_each_category_has_its_own_gate_threshold(models: ModelRegistry) -> None:
    # one category's estimate at its own threshold escalates the text, however low the others
    heads = models.heads()
    assert heads.gate is not None
    assert heads.gate.thresholds.shape == (len(heads.categories),)
    text = CLEAR[0]
    ids, rest = models.text_buckets(text), models.text_features(text)
    estimate = heads.estimated_scores(ids, rest)
    assert heads.settled_scores(ids, rest) is not None
    j = heads.categories.index("self_harm")
    lowered = heads.gate.thresholds.copy()
    lowered[j] = estimate[j]
    strict = dataclasses.replace(heads, gate=dataclasses.replace(heads.gate, thresholds=lowered))
    assert strict.settled_scores(ids, rest) is None
    # the rare categories' thresholds were fitted on their own rows, not the common ones'
    assert heads.gate.thresholds[j] < heads.gate.thresholds[heads.categories.index("toxicity")]


def test_score_cache_is_bounded_and_keeps_the_encoder_result() -> None:
    cache = ScoreCache(size=2)
    lexical = HeadResult(STAGE_LEXICAL, {"insult": 0.1})
    encoder = HeadResult(STAGE_ENCODER, {"insult": 0.2})
    cache.put("a", encoder)
    cache.put("a", lexical)  # never replaces an encoder result
    assert cache.get("a") == encoder
    cache.put("b", lexical)
    assert cache.get("b", need_encoder=True) is None  # a lexical result is not enough
    assert cache.get("a") == encoder  # "a" is now the most recently used
    cache.put("c", lexical)  # evicts the least recently used, "b"
    assert len(cache) == 2
    assert cache.get("a") == encoder and cache.get("b") is None and cache.get("c") == lexical


@pytest.mark.parametrize(
    "text",
    [
        "hello there",
        "f.u.c.k   you  l00ser!!",
        "\u00dcn\u00efc\u00f6d\u00e9 \uff26\uff35\uff2c\uff2c width \u200b zero-width",
        "a" * 3000,
        "",
        "word " * 50,
    ],
)
def test_cached_buckets_equal_the_reference_n_grams(text: str) -> None:
    reference = sorted({zlib.crc32(f.encode()) & MASK for f in ngrams(text)})
    assert np.array_equal(buckets(text), np.array(reference, dtype=np.int32))


@pytest.mark.parametrize(
    "text",
    [
        "du bist ein Vollidiot und alle hassen dich",
        "je vais te trouver et te faire du mal",
        "eres una persona horrible",
        "\u0442\u044b \u043f\u043e\u043b\u043d\u044b\u0439 \u0438\u0434\u0438\u043e\u0442",
        "\u4f60\u662f\u4e2a\u767d\u75f4",
    ],
)
async def test_other_languages_always_get_the_multilingual_encoder(
    models: ModelRegistry, text: str
) -> None:
    # the gate learnt from mostly English text; escalating costs only time
    detector = ToxicityDetector(models)
    condition = condition_of(shipped_rules()[0])
    assert not models.text_may_settle(text)
    assert not detector.settles(text, condition)
    found = await detector.detect(build_message(text), condition, DetectContext(cascade=True))
    assert all("encoder stage" in d.reason for d in found)
