"""Toxicity detector (condition kind ``toxicity``): nine categories from trained heads.

Categories: ``toxicity`` (rude, hateful or abusive overall), ``severe_toxicity``, ``obscene``,
``insult``, ``identity_attack``, ``threat``, ``sexual``, ``self_harm``, ``violence``. Each is
a calibrated logistic head over the multilingual Universal Sentence Encoder embedding plus
the bundled profanity lists' hits (see ``heads`` and ``moderation/training``). Conditions
pick categories with ``categories`` and set ``threshold`` or per-category ``thresholds``
(the shipped rules' values: ``defaults.TOXICITY_THRESHOLDS``).
The model loads lazily (or through ``warm_up``); inference runs in a worker thread, batched
across concurrent messages.

With the engine's ``cascade`` on, it is cheap (``head_detector``): the gate over the text's n-grams settles clear
texts without the encoder (and the engine may then judge them on the send path,
``settles``); only the others wait for the encoder. Every detection's reason says which stage
decided: a hit gives category, score and threshold, e.g. ``insult 0.93 >= 0.80 (encoder
stage)``; a score below its threshold only the stage, e.g. ``lexical stage: settled without
the encoder (every estimate below its gate threshold)`` (the score is the detection's
confidence).
"""

from __future__ import annotations

from moderation.detectors.base import EXPENSIVE, DetectContext, message_text
from moderation.detectors.cascade import STAGE_LEXICAL, HeadResult
from moderation.detectors.head_detector import HeadDetector
from moderation.rules import TOXICITY_CATEGORIES, Condition
from moderation.types import Detection, MessageView

#: The reason of a score the lexical stage settled.
LEXICAL_REASON = (
    "lexical stage: settled without the encoder (every estimate below its gate threshold)"
)


class ToxicityDetector(HeadDetector):
    """Detector for ``toxicity`` conditions; always scores all nine categories."""

    name = "toxicity"
    cost = EXPENSIVE + 10
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = TOXICITY_CATEGORIES

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        result = await self.head_result(message_text(message), condition, cascade=ctx.cascade)
        stage = self.stage_of(result)
        thresholds = self.thresholds(condition)
        out: list[Detection] = []
        for c in self.categories:
            score = result.scores.get(c, 0.0)
            threshold = thresholds[c]
            # a full explanation for a hit; below the threshold, only the stage (cheap: this
            # runs on the send path for every message)
            reason = (
                f"{c} {score:.2f} >= {threshold:.2f} ({stage})" if score >= threshold else stage
            )
            out.append(Detection(self.name, c, score, reason))
        return out

    def stage_of(self, result: HeadResult) -> str:
        """Which stage decided, as the reasons say it."""
        if result.stage != STAGE_LEXICAL:
            return "encoder stage"
        return LEXICAL_REASON
