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
