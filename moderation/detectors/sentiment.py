"""Sentiment detector (condition kind ``sentiment``): ``negative`` and ``positive``.

Scores come from VADER (``vaderSentiment``, MIT, a 7,500-word English lexicon with rules for
negation, intensifiers, capitals, punctuation and emoticons): ``negative`` is the negative
part of the compound score (0..1), ``positive`` the positive part. English only: other
languages mostly score 0. Cheap (well under a millisecond), so it runs inline.
"""

from __future__ import annotations

from typing import Any

from moderation.detectors.base import DetectContext, Detector, message_text
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.rules import SENTIMENT_CATEGORIES, Condition
from moderation.types import Detection, MessageView


def sentiment(analyzer: Any, text: str) -> tuple[float, float]:
    """(negative, positive), each 0..1, from the VADER ``analyzer``'s compound score."""
    if not text.strip():
        return 0.0, 0.0
    compound = float(analyzer.polarity_scores(text[:2000])["compound"])
    return round(max(0.0, -compound), 4), round(max(0.0, compound), 4)


class SentimentDetector(Detector):
    """Detector for ``sentiment`` conditions; always scores ``negative`` and ``positive``."""

    name = "sentiment"
    cost = 20
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = SENTIMENT_CATEGORIES

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models

    def warm_up(self) -> None:
        """Start loading the VADER lexicon in a background thread."""
        self.models.warm_up(("vader",))

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        negative, positive = sentiment(self.models.vader(), message_text(message))
        return [
            Detection(self.name, "negative", negative),
            Detection(self.name, "positive", positive),
        ]
