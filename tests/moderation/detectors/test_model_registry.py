"""The model registry: one load per model, background warm-up once per name, shared by the
detectors ``build_detectors`` makes."""

from __future__ import annotations

import queue

import numpy as np

from moderation.detectors.base import Detector
from moderation.detectors.head_detector import HeadDetector
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.local_detectors import build_detectors


def test_each_model_loads_once_and_is_shared() -> None:
    models = ModelRegistry()
    assert models.heads() is models.heads()
    assert models.lexical() is models.lexical()
    assert models.encoder() is models.encoder()
    assert shared_models() is shared_models()


def test_text_features_are_cached_and_read_only() -> None:
    models = ModelRegistry()
    first = models.text_features("you stupid idiot")
    assert models.text_features("you stupid idiot") is first
    assert not first.flags.writeable and np.isfinite(first).all()


def test_warm_up_loads_each_name_once_in_the_background() -> None:
    models = ModelRegistry()
    started: queue.Queue[tuple[str, ...]] = queue.Queue()
    models._load = lambda names: started.put(tuple(names))  # type: ignore[method-assign]
    models.warm_up(["heads", "lexical"])
    models.warm_up(["heads", "lexical", "vader"])  # only vader is new
    got = sorted([started.get(timeout=5), started.get(timeout=5)])
    assert got == [("heads", "lexical"), ("vader",)]


def test_built_in_detectors_declare_the_protocol_and_share_the_models() -> None:
    models = ModelRegistry()
    detectors = build_detectors(models)
    assert {"keywords", "patterns", "phone", "email", "spam", "toxicity", "scam"} <= set(detectors)
    assert all(Detector in type(d).__mro__ for d in detectors.values())
    assert all(kind == d.name for kind, d in detectors.items())
    heads = [d for d in detectors.values() if isinstance(d, HeadDetector)]
    assert heads and all(d.models is models for d in heads)


def test_a_repeated_text_needs_no_lexical_stage_again() -> None:
    """The gate's answer and the scam detector's signals are kept per text beyond the cheap
    features' small cache, so a text seen again (settled or escalated) costs no n-grams, no
    features and no gate; a very long text is not kept (the caches' memory stays bounded)."""
    from moderation.detectors.model_registry import KEPT_TEXT_CHARS
    from moderation.detectors.scam import ScamDetector
    from moderation.detectors.toxicity import ToxicityDetector

    models = ModelRegistry()
    toxicity, scam = ToxicityDetector(models), ScamDetector(models)
    settled = "lunch at noon with the team? bit.ly/abc and it is urgent"
    escalated = "du bist ein Vollidiot"  # another language: never settled
    first = toxicity.lexical_result(settled)
    assert first is not None
    assert toxicity.lexical_result(escalated) is None
    signals = scam.links_and_urgency(settled)
    assert signals == (["bit.ly"], 1)
    models._cheap.cache_clear()  # as after 512 other texts
    assert toxicity.lexical_result(settled) is first
    assert scam.lexical_result(escalated) is None
    assert scam.links_and_urgency(settled) == signals
    assert models._cheap.cache_info().misses == 0  # nothing computed again
    long = "lunch at noon " * (KEPT_TEXT_CHARS // 10)
    assert toxicity.lexical_result(long) == toxicity.lexical_result(long)
    assert models._lexical_stage.cache_info().currsize == 2
