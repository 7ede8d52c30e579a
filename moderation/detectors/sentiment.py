"""Sentiment detector (condition kind ``sentiment``): ``negative`` and ``positive``.

Scores come from VADER (``vaderSentiment``, MIT, a 7,500-word English lexicon with rules for
negation, intensifiers, capitals, punctuation and emoticons): ``negative`` is the negative
part of the compound score (0..1), ``positive`` the positive part. English only: other
languages mostly score 0. Cheap (well under a millisecond), so it runs inline.
"""

from __future__ import annotations

import threading
from typing import Any

from moderation.detectors.base import DetectContext, message_text
from moderation.lazy import once
from moderation.rules import SENTIMENT_CATEGORIES, Condition
from moderation.types import Detection, MessageView


@once
def analyzer() -> Any:
    """The VADER analyzer, loaded once (reads its lexicon: about 50 ms)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> tuple[float, float]:
    """(negative, positive), each 0..1, from VADER's compound score."""
    if not text.strip():
        return 0.0, 0.0
    compound = float(analyzer().polarity_scores(text[:2000])["compound"])
    return round(max(0.0, -compound), 4), round(max(0.0, compound), 4)


class SentimentDetector:
    """Detector for ``sentiment`` conditions; always scores ``negative`` and ``positive``."""

    name = "sentiment"
    cost = 20
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = SENTIMENT_CATEGORIES

    def warm_up(self) -> None:
        threading.Thread(target=analyzer, name="parley-vader-warmup", daemon=True).start()

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        negative, positive = sentiment(message_text(message))
        return [
            Detection(self.name, "negative", negative),
            Detection(self.name, "positive", positive),
        ]
