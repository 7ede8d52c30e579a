"""Sentiment detector (condition kind ``sentiment``): ``negative`` and ``positive``.

Scores come from VADER (``vaderSentiment``, MIT, a 7,500-word English lexicon with rules for
negation, intensifiers, capitals, punctuation and emoticons): ``negative`` is the negative
part of the compound score (0..1), ``positive`` the positive part. English only: other
languages mostly score 0. Cheap (well under a millisecond), so it runs inline.

Two shortcuts, both exact: VADER gives a word a valence only when the word is in its lexicon
(negation, intensifiers, "but" and punctuation only scale valences already there), so an
ASCII text (no emoji, which VADER would spell out in words) with no lexicon word scores 0
without running VADER (``lexicon_free``: about 2 us instead of 20); and the scores of the
texts seen last are kept (``kept.Kept``), as chat repeats texts.
"""

from __future__ import annotations

import string
from typing import Any

from moderation.detectors.base import DetectContext, Detector, message_text
from moderation.detectors.kept import Kept
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.rules import SENTIMENT_CATEGORIES, Condition
from moderation.types import Detection, MessageView

#: Characters of a text that VADER reads.
MAX_CHARS = 2000
_PUNCTUATION = string.punctuation


def lexicon_free(analyzer: Any, text: str) -> bool:
    """Whether VADER would find no word of its lexicon in ``text`` (an ASCII text: emoji are
    spelled out in words first), so its compound score is 0. Words are cut as VADER cuts them
    (on whitespace, leading and trailing punctuation stripped unless that leaves two
    characters or fewer: emoticons) and looked up in lower case, as VADER looks them up."""
    if not text.isascii():
        return False
    lexicon = analyzer.lexicon
    for word in text.split():
        stripped = word.strip(_PUNCTUATION)
        if (stripped if len(stripped) > 2 else word).lower() in lexicon:
            return False
    return True


def sentiment(analyzer: Any, text: str) -> tuple[float, float]:
    """(negative, positive), each 0..1, from the VADER ``analyzer``'s compound score."""
    text = text[:MAX_CHARS]
    if not text.strip() or lexicon_free(analyzer, text):
        return 0.0, 0.0
    compound = float(analyzer.polarity_scores(text)["compound"])
    return round(max(0.0, -compound), 4), round(max(0.0, compound), 4)


class SentimentDetector(Detector):
    """Detector for ``sentiment`` conditions; always scores ``negative`` and ``positive``."""

    name = "sentiment"
    cost = 20
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = SENTIMENT_CATEGORIES

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models
        self._scores: Kept[str, tuple[float, float]] = Kept()

    def warm_up(self) -> None:
        """Start loading the VADER lexicon in a background thread."""
        self.models.warm_up(("vader",))

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        text = message_text(message)
        found = self._scores.get(text)
        if found is None:
            found = sentiment(self.models.vader(), text)
            self._scores.put(text, found, text)
        negative, positive = found
        return [
            Detection(self.name, "negative", negative),
            Detection(self.name, "positive", positive),
        ]
