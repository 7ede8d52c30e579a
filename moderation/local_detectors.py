"""The built-in local detectors, by the condition kind they serve: ``build_detectors``.

The engine never imports a detector: whoever builds it (the server's moderation service,
tests, tools) passes the detectors it should use, usually ``build_detectors()`` plus the
configured providers (``moderation.providers``).
"""

from __future__ import annotations

from moderation.detectors.base import Detector
from moderation.detectors.contacts import EmailDetector, PhoneDetector
from moderation.detectors.image import ImageDetector
from moderation.detectors.image import available as image_model_available
from moderation.detectors.image_hash import ImageHashDetector
from moderation.detectors.keywords import KeywordDetector
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.detectors.patterns import PatternDetector
from moderation.detectors.scam import ScamDetector
from moderation.detectors.sentiment import SentimentDetector
from moderation.detectors.similarity import SimilarityDetector
from moderation.detectors.spam import SpamDetector
from moderation.detectors.toxicity import ToxicityDetector


def build_detectors(models: ModelRegistry | None = None) -> dict[str, Detector]:
    """Fresh instances of the built-in local detectors, keyed by the condition kind they serve.

    The model-backed ones load from ``models`` (default: the process's ``shared_models()``).
    ``image`` and ``video`` are included only when the optional extra ``parley[images]`` is
    installed.
    Detectors hold per-list caches: build them once and share them across engines.
    """
    models = shared_models() if models is None else models
    detectors: list[Detector] = [
        KeywordDetector(),
        PatternDetector(),
        EmailDetector(),
        SpamDetector(),
        PhoneDetector(),
        SentimentDetector(models),
        ToxicityDetector(models),
        ScamDetector(models),
        SimilarityDetector(models),
        # Known-bad image lists (perceptual hashes): Pillow and numpy, always available.
        ImageHashDetector(),
    ]
    if image_model_available():
        # One model, two condition kinds: ``image`` and ``video`` (a video's frames).
        detectors.append(ImageDetector(models))
        detectors.append(ImageDetector(models, kind="video"))
    return {d.name: d for d in detectors}
