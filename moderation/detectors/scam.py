"""Scam and spam detector (condition kind ``scam``).

Categories, all scored on every run:

- ``scam``: a calibrated head (sentence embedding + link, shortener, money, urgency and
  profanity features) trained on SMS and YouTube spam and the project's own scam messages,
  combined with the sender's spam behaviour: ``1 - (1 - head) * (1 - 0.5 * behaviour)``.
- ``phishing``, ``advance_fee``, ``crypto``, ``fake_offer``: heads trained on the project's
  own (small) set only; rough, prefer ``scam`` for blocking.
- ``link_shortener``: 1.0 when a link goes through a known URL shortener (bit.ly, ...).
- ``urgency``: pressure words ("urgent", "within 24 hours", "account suspended"), 0.5 for
  one, 0.75 for two, 1.0 for three or more.
- ``spam_behaviour``: the highest confidence of the spam behaviour detector (repeats,
  bursts, links) with its default limits, from ``ctx.sender_recent``. Comparing the message
  with the sender's recent ones is this detector's costly part, so it is skipped (reported
  as 0 with the reason "not computed") when the condition does not read ``spam_behaviour``
  and the behaviour could not lift ``scam`` to the condition's threshold.
"""

from __future__ import annotations

from moderation.detectors.base import EXPENSIVE, DetectContext, message_text
from moderation.detectors.head_detector import HeadDetector
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.signals import shortener_links, urgency_hits
from moderation.detectors.spam import SpamDetector
from moderation.rules import SCAM_CATEGORIES, Condition
from moderation.types import Detection, MessageView

_HEAD_CATEGORIES = ("phishing", "advance_fee", "crypto", "fake_offer")


class ScamDetector(HeadDetector):
    """Detector for ``scam`` conditions; always scores every category in ``SCAM_CATEGORIES``."""

    name = "scam"
    cost = EXPENSIVE + 5
    reads: frozenset[str] = frozenset({"sender_recent"})
    categories: tuple[str, ...] = SCAM_CATEGORIES

    def __init__(self, models: ModelRegistry | None = None) -> None:
        super().__init__(models)
        self._spam = SpamDetector()

    def behaviour_matters(self, condition: Condition, head: float) -> bool:
        """Whether the sender's spam behaviour can change this condition's outcome: the
        condition reads ``spam_behaviour`` (or every category), or the behaviour could lift
        ``scam`` (at most ``0.5 + 0.5 * head``) to its threshold. Comparing a message with
        the sender's recent ones is the costly part of this detector."""
        if not condition.categories or "spam_behaviour" in condition.categories:
            return True
        if "scam" not in condition.categories:
            return False
        return 0.5 + 0.5 * head >= self.thresholds(condition)["scam"]

    def links_and_urgency(self, text: str) -> tuple[list[str], int]:
        """``(heads.shortener_links(text), heads.urgency_hits(text))``, read from the text's
        cached cheap features (``ModelRegistry.text_signals``: computed once per text with
        the heads' features, and kept as long as its scores) when there are any."""
        if not text or text.isspace():
            return shortener_links(text), urgency_hits(text)
        shorteners, urgency = self.models.text_signals(text)
        return list(shorteners), urgency

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        text = message_text(message)
        heads = await self.head_scores(text, condition, cascade=ctx.cascade)
        head = heads.get("scam", 0.0)
        behaviour = 0.0
        behaviour_reason = ""
        if self.behaviour_matters(condition, head):
            behaviour_hits = await self._spam.detect(message, Condition("spam", ("text",)), ctx)
            behaviour = max((d.confidence for d in behaviour_hits), default=0.0)
        else:
            behaviour_reason = "not computed: it cannot lift scam to this condition's threshold"
        shorteners, urgency = self.links_and_urgency(text)
        out = [
            Detection(self.name, "scam", round(1 - (1 - head) * (1 - 0.5 * behaviour), 4)),
            *(Detection(self.name, c, heads.get(c, 0.0)) for c in _HEAD_CATEGORIES),
            Detection(
                self.name,
                "link_shortener",
                1.0 if shorteners else 0.0,
                f"shortened link {shorteners[0]}" if shorteners else "",
            ),
            Detection(
                self.name, "urgency", 0.0 if not urgency else min(1.0, 0.25 + 0.25 * urgency)
            ),
            Detection(self.name, "spam_behaviour", round(behaviour, 4), behaviour_reason),
        ]
        return out
