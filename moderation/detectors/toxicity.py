"""Toxicity detector (condition kind ``toxicity``): nine categories from trained heads.

Categories: ``toxicity`` (rude, hateful or abusive overall), ``severe_toxicity``, ``obscene``,
``insult``, ``identity_attack``, ``threat``, ``sexual``, ``self_harm``, ``violence``. Each is
a calibrated logistic head over the multilingual Universal Sentence Encoder embedding plus
the bundled profanity lists' hits (see ``heads`` and ``moderation/training``). Conditions
pick categories with ``categories`` and set ``threshold`` or per-category ``thresholds``
(the shipped rules' values: ``defaults.TOXICITY_THRESHOLDS``).
The model loads lazily (or through ``warm_up``); inference runs in a worker thread, batched
across concurrent messages.
"""

from __future__ import annotations

from moderation.detectors.base import EXPENSIVE, DetectContext, message_text
from moderation.detectors.head_detector import HeadDetector
from moderation.rules import TOXICITY_CATEGORIES, Condition
from moderation.types import Detection, MessageView


class ToxicityDetector(HeadDetector):
    """Detector for ``toxicity`` conditions; always scores all nine categories."""

    name = "toxicity"
    cost = EXPENSIVE + 10
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = TOXICITY_CATEGORIES

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        scores = await self.head_scores(message_text(message))
        return [Detection(self.name, c, scores.get(c, 0.0)) for c in self.categories]
