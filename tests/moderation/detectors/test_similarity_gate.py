"""The similarity rule's cascade (``similarity_gate``): with ``aiCascade`` on, a text clearly
unlike every sentence of the list is settled without an encoder pass (counted by the
encoder's own counter), a paraphrase still reaches the encoder and is flagged, a list made up
here works the same, and with the cascade off every text gets the encoder as before. The
gate's promise is checked on the shipped list: no text the encoder scores within the margin
of the threshold is settled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moderation.defaults import SIMILARITY_THRESHOLD, default_lists, default_rules
from moderation.detectors.base import DetectContext
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.similarity import SimilarityDetector
from moderation.detectors.similarity_gate import MARGIN, MIN_GATED, SimilarityGate, shouted
from moderation.engine import Engine
from moderation.rules import Condition, WordList, parse_list, parse_rule
from moderation.training.similarity_gate import variants
from tests.moderation.conftest import build_message

DATA = Path(__file__).resolve().parents[3] / "moderation/training/data"
LISTS = {wl.id: wl for wl in (parse_list(b) for b in default_lists())}
CIRC = LISTS["platform-circumvention"]
COND = Condition(
    "similarity", ("text",), list_id="platform-circumvention", threshold=SIMILARITY_THRESHOLD
)
ON = DetectContext(lists=LISTS, cascade=True)
OFF = DetectContext(lists=LISTS, cascade=False)
UNRELATED = (
    "the build is green again, merging after lunch",
    "see you at the cinema tonight",
    "can you review my pull request when you have a minute?",
)


@pytest.fixture(scope="module")
def detector() -> SimilarityDetector:
    """A detector on its own registry, encoder loaded (so its counter is this module's)."""
    found = SimilarityDetector(ModelRegistry())
    found.encoder.load()
    return found


async def judged(
    detector: SimilarityDetector, text: str, ctx: DetectContext = ON, cond: Condition = COND
) -> tuple[float, str, int]:
    """Score, reason, and how many texts the encoder encoded for it."""
    await detector.vectors(ctx.lists[cond.list_id or ""])  # the list's own pass, first
    before = detector.encoder.encoded
    found = await detector.detect(build_message(text), cond, ctx)
    assert len(found) == 1
    return found[0].confidence, found[0].reason, detector.encoder.encoded - before


async def test_unrelated_text_is_settled_without_an_encoder_pass(
    detector: SimilarityDetector,
) -> None:
    for text in UNRELATED:
        score, reason, encoded = await judged(detector, text)
        assert encoded == 0, text
        assert reason.startswith("lexical stage: settled without the encoder"), reason
        assert score < SIMILARITY_THRESHOLD
    # the same texts with the cascade off: the encoder, and its exact score
    for text in UNRELATED:
        score, reason, encoded = await judged(detector, text, OFF)
        assert encoded == 1 and reason.startswith("similar to")
        assert score < SIMILARITY_THRESHOLD


async def test_paraphrase_still_reaches_the_encoder_and_is_flagged(
    detector: SimilarityDetector,
) -> None:
    for text in (
        "can we continue on whatsapp? text me there",
        "message me on telegram, same username",
    ):
        on = await judged(detector, text)
        assert on[2] == 1 and on[1].startswith("similar to"), on
        assert on[0] >= SIMILARITY_THRESHOLD
        off = await judged(detector, text, OFF)
        assert off[0] == on[0]  # the same encoder score, cascade or not


async def test_a_new_list_works_with_the_gate(detector: SimilarityDetector) -> None:
    wl = WordList(
        "phones",
        "Asking for phone numbers",
        "sentences",
        ("what's your phone number?", "send me your cell number", "can I have your number"),
    )
    lists = {"phones": wl}
    cond = Condition("similarity", ("text",), list_id="phones", threshold=0.65)
    ctx = DetectContext(lists=lists, cascade=True)
    score, reason, encoded = await judged(detector, "mind sharing your phone number?", ctx, cond)
    assert encoded == 1 and score >= 0.65 and "what's your phone number?" in reason
    score, reason, encoded = await judged(
        detector, "the build is green again, merging after lunch", ctx, cond
    )
    assert encoded == 0 and reason.startswith("lexical stage") and score < 0.65


async def test_shouted_text_and_low_thresholds_always_get_the_encoder(
    detector: SimilarityDetector,
) -> None:
    assert shouted("LET'S SWITCH TO A VIDEO CALL ON SKYPE") and not shouted("Lunch at 12? OK")
    loud = await judged(detector, "SEE YOU AT THE CINEMA TONIGHT")
    assert loud[2] == 1 and loud[1].startswith("similar to")
    low = Condition("similarity", ("text",), list_id="platform-circumvention", threshold=0.55)
    assert MIN_GATED > 0.55
    score, reason, encoded = await judged(detector, "see you at the gym tomorrow", ON, low)
    assert encoded == 1 and reason.startswith("similar to")


async def test_engine_judges_a_settled_text_on_the_send_path(
    detector: SimilarityDetector,
) -> None:
    """``settles`` lets the engine judge the message inline once the list is embedded."""
    rule = next(
        parse_rule({**r, "enabled": True})
        for r in default_rules()
        if r["id"] == "platform-circumvention"
    )
    for cascade in (True, False):
        engine = Engine([rule], LISTS, {"similarity": detector}, cascade=cascade)
        await detector.vectors(CIRC)
        assert engine.inline_for("user", "text", UNRELATED[1]) is cascade
        assert not engine.inline_for("user", "text", "add me on snapchat, my username is here")


async def test_gate_escalates_everything_near_the_threshold_on_the_shipped_list(
    detector: SimilarityDetector,
) -> None:
    """The list's sentences, variants of them, and the eval set: every text the encoder
    scores at the threshold less the margin or more is escalated (none settled)."""
    rows = [
        json.loads(line)
        for line in (DATA / "platform_circumvention_eval.jsonl").read_text().splitlines()
    ]
    texts = [r["text"] for r in rows] + [v for s in CIRC.items for v in [s, *variants(s)]]
    gate = detector.gate()
    assert isinstance(gate, SimilarityGate)
    gate_at = gate.gate_threshold(SIMILARITY_THRESHOLD)
    assert gate_at is not None
    sentences = detector.encoder.encode(list(CIRC.items))
    true = (detector.encoder.encode(texts) @ sentences.T).max(axis=1)
    est = np.stack([gate.estimate(t) for t in texts]) @ sentences.T
    must = true >= SIMILARITY_THRESHOLD - MARGIN
    settled = (est.max(axis=1) < gate_at) & ~np.array([shouted(t) for t in texts])
    assert must.sum() > 200
    assert not [t for t, m, s in zip(texts, must, settled, strict=True) if m and s]
    assert np.corrcoef(true, est.max(axis=1))[0, 1] > 0.8


async def test_translations_of_listed_sentences_are_escalated(
    detector: SimilarityDetector,
) -> None:
    """The encoder is multilingual: a listed sentence in German, French, Spanish, Russian or
    Japanese (translated for this test) scores high, and the gate escalates it."""
    translated = (
        "lass uns auf WhatsApp weiterschreiben",
        "bezahl mich direkt per Überweisung statt über die Seite",
        "continuons cette conversation sur WhatsApp",
        "paie-moi directement par virement au lieu de passer par le site",
        "escríbeme por telegram mejor",
        "págame directamente por transferencia en vez de por la web",
        "давай продолжим в WhatsApp",
        "WhatsAppで話そう",
    )
    for text in translated:
        score, reason, encoded = await judged(detector, text)
        assert encoded == 1 and reason.startswith("similar to"), (text, reason)
        assert score >= SIMILARITY_THRESHOLD, (text, score)
