"""The base of the detectors that score a message with the bundled text heads, in a cascade.

A text's scores come from one of two stages (see ``heads`` and ``cascade``):

1. the **lexical** stage: the gate (``heads.Gate``: hashed n-grams and the cheap features)
   estimates every score and settles a clear text without the encoder; its scores are the
   estimates, capped below ``heads.SETTLE_LEVEL``;
2. the **encoder** stage: the sentence embedding (the shared encoder, micro-batched and off
   the event loop) followed by the cheap text features (``ModelRegistry.text_features``),
   scored by the calibrated heads.

The lexical stage runs only when the engine's ``cascade`` is on (the ``aiCascade`` setting;
off by default); a condition with a threshold below ``heads.SETTLE_LEVEL`` on one of its
categories always gets the encoder stage. Results are cached per text
(``ModelRegistry.scores``). The models come from the ``ModelRegistry`` the detector is given,
by default the process's one.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from moderation.detectors.base import EXPENSIVE, Detector
from moderation.detectors.cascade import STAGE_ENCODER, STAGE_LEXICAL, HeadResult
from moderation.detectors.heads import SETTLE_LEVEL
from moderation.detectors.model_registry import ModelName, ModelRegistry, shared_models
from moderation.rules import Condition

#: What ``HeadDetector.warm_up`` starts loading.
HEAD_MODELS: tuple[ModelName, ...] = ("encoder", "heads", "lexical", "profanity")
#: The threshold of a condition that sets none (the engine's default).
DEFAULT_THRESHOLD = 0.5
#: Conditions whose ``needs_encoder`` answer is kept (cleared when full).
CONDITION_CACHE = 1024
#: Texts are cut to this many characters, whitespace runs to one space, for the cache key
#: (as the encoder does).
MAX_CHARS = 1000


@lru_cache(maxsize=256)
def cache_key(text: str) -> str:
    """The score cache's key for ``text`` (kept for the few texts in flight: a message asks
    for it once per condition and stage)."""
    return " ".join(text.split())[:MAX_CHARS]


class HeadDetector(Detector):
    """Base of the detectors that score a message with the bundled heads.

    Reports every category in ``categories`` on every run (confidence 0 for an empty text),
    so the evaluate endpoint shows all of them; the engine applies the thresholds.
    """

    name: str = ""
    cost: int = EXPENSIVE

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models
        # by id(condition): hashing a condition costs more than the answer (each entry keeps
        # its condition alive, so its id is not reused while cached)
        self._needs_encoder: dict[int, tuple[Condition, bool]] = {}
        self._thresholds: dict[int, tuple[Condition, dict[str, float]]] = {}

    def thresholds(self, condition: Condition) -> dict[str, float]:
        """The threshold of every category of this detector under ``condition`` (cached
        per condition)."""
        known = self._thresholds.get(id(condition))
        if known is not None and known[0] is condition:
            return known[1]
        found = {c: condition.threshold_for(c, DEFAULT_THRESHOLD) for c in self.categories}
        if len(self._thresholds) >= CONDITION_CACHE:
            self._thresholds.clear()
        self._thresholds[id(condition)] = (condition, found)
        return found

    def warm_up(self) -> None:
        """Start loading the encoder, the heads and the lexical model in background threads."""
        self.models.warm_up(HEAD_MODELS)

    def needs_encoder(self, condition: Condition | None) -> bool:
        """Whether ``condition`` has a threshold the lexical stage cannot decide (below
        ``SETTLE_LEVEL`` on a category it reads; a condition without thresholds has 0.5).
        None: no condition, the default thresholds of the shipped rules apply. Cached per
        condition (conditions are immutable)."""
        if condition is None:
            return False
        known = self._needs_encoder.get(id(condition))
        if known is not None and known[0] is condition:
            return known[1]
        scored = self.models.heads().categories
        categories = [c for c in condition.categories or self.categories if c in scored]
        thresholds = self.thresholds(condition)
        found = any(thresholds.get(c, DEFAULT_THRESHOLD) < SETTLE_LEVEL for c in categories)
        if len(self._needs_encoder) >= CONDITION_CACHE:
            self._needs_encoder.clear()
        self._needs_encoder[id(condition)] = (condition, found)
        return found

    def settles(self, text: str, condition: Condition) -> bool:
        """Whether the lexical stage decides ``text`` for ``condition`` (cheap and
        synchronous: the gate over the text's n-grams), so the engine may judge it on the
        send path. The lexical stage's result goes to the score cache, where ``detect``
        finds it."""
        if not text or text.isspace():
            return True
        if self.needs_encoder(condition):
            return False
        key = cache_key(text)
        if self.models.scores.get(key) is not None:
            return True
        result = self.lexical_result(text)
        if result is None:
            return False
        self.models.scores.put(key, result)
        return True

    def lexical_result(self, text: str) -> HeadResult | None:
        """The lexical stage's result for ``text``, or None when the gate escalates it (or
        the text looks like another language than English, ``heads.may_settle``); cached per
        text (``ModelRegistry.lexical_stage``)."""
        return self.models.lexical_stage(text)

    async def head_scores(
        self, text: str, condition: Condition | None = None, *, cascade: bool = False
    ) -> dict[str, float]:
        """Calibrated head probabilities for ``text`` (every bundled category)."""
        return (await self.head_result(text, condition, cascade=cascade)).scores

    async def head_result(
        self, text: str, condition: Condition | None = None, *, cascade: bool = False
    ) -> HeadResult:
        """The scores of ``text`` and the stage that produced them (cached per text);
        ``cascade``: the lexical stage may settle it (else the encoder always runs)."""
        heads = self.models.heads()
        if not text or text.isspace():
            return HeadResult(STAGE_LEXICAL, dict.fromkeys(heads.categories, 0.0))
        key = cache_key(text)
        need_encoder = not cascade or self.needs_encoder(condition)
        cache = self.models.scores
        found = cache.get(key, need_encoder=need_encoder)
        if found is not None:
            return found
        result = None if need_encoder else self.lexical_result(text)
        if result is None:
            embedding = await self.models.encoder().embed(text)
            rest = self.models.text_features(text)
            probs = heads.scores(np.concatenate([embedding.astype(np.float32), rest])[None, :])[0]
            result = HeadResult(
                STAGE_ENCODER,
                {c: round(float(p), 4) for c, p in zip(heads.categories, probs, strict=True)},
            )
        cache.put(key, result)
        return result
