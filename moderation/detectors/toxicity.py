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
    #: The last result's detections below any threshold, for the next condition on it.
    _last: tuple[HeadResult, tuple[Detection, ...]] | None = None

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        result = await self.head_result(message_text(message), condition, cascade=ctx.cascade)
        stage = self.stage_of(result)
        thresholds = self.thresholds(condition)
        # below the threshold a detection gives only the stage (cheap: this runs on the send
        # path for every message), the same for every condition on one result: the two
        # shipped rules' conditions share those detections
        last = self._last
        if last is not None and last[0] is result:
            out = list(last[1])
        else:
            scores = result.scores
            out = [Detection(self.name, c, scores.get(c, 0.0), stage) for c in self.categories]
            self._last = (result, tuple(out))
        for i, c in enumerate(self.categories):
            score = out[i].confidence
            threshold = thresholds[c]
            if score >= threshold:  # a hit: the full explanation
                out[i] = Detection(
                    self.name, c, score, f"{c} {score:.2f} >= {threshold:.2f} ({stage})"
                )
        return out

    def stage_of(self, result: HeadResult) -> str:
        """Which stage decided, as the reasons say it."""
        if result.stage != STAGE_LEXICAL:
            return "encoder stage"
        return LEXICAL_REASON
