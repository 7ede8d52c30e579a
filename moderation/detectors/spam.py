"""Spam behaviour from the sender's recent messages: repeats, bursts and link-heavy texts.

Categories and their confidences (0.5 exactly when the configured count is reached, 1.0 at
about twice it, so the engine's default threshold of 0.5 means "limit reached"):

- ``repeat``: this text and the sender's recent texts that are the same or nearly the same
  (folded, difflib ratio >= ``similarity``, default 0.9) within ``windowSeconds`` (600),
  across all conversations; limit ``repeatThreshold`` (3). Texts shorter than ``minLength``
  (12 characters) never count, so "ok" or "thanks" can be repeated freely. With
  ``acrossConversations`` (default false) only repeats in *other* conversations count, one
  per conversation: the signature of a spammer writing to many people, while a user who says
  the same thing again in one chat (or a script that talks to one peer) is left alone.
- ``burst``: messages within ``burstSeconds`` (10), this one included; limit ``burstCount`` (8).
- ``links``: links in this text; limit ``linkThreshold`` (3).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from difflib import SequenceMatcher

from moderation.detectors.base import DetectContext, Detector, message_text
from moderation.normalize import fold, words
from moderation.rules import Condition
from moderation.types import Detection, MessageView

_LINK_RE = re.compile(
    r"\bhttps?://\S+|\bwww\.\S+|\b[a-z0-9-]{2,63}\.(?:com|net|org|io|ly|gg|xyz|ru|top|info|biz"
    r"|click|link|site|online|shop|live|me|co|to|cc|tk)\b(?:/\S*)?",
    re.IGNORECASE,
)


def _int(condition: Condition, name: str, default: int) -> int:
    value = condition.param(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def scaled(count: int, limit: int, *, start: int = 1) -> float:
    """0 at ``start``, 0.5 at ``limit``, 1.0 at about twice the limit."""
    span = max(limit - start, 1)
    return round(min(1.0, max(0.0, 0.5 * (count - start) / span)), 4)


@functools.lru_cache(maxsize=8192)
def normalized(text: str) -> str:
    """A text reduced to its folded words, for near-duplicate comparison (cached: the same
    recent texts are compared against every new message of their sender)."""
    return " ".join(words(fold(text)))


@functools.lru_cache(maxsize=8192)
def _letters(text: str) -> Counter[str]:
    """How often each character occurs in a normalised text (cached, as ``normalized``)."""
    return Counter(text)


def similar(a: str, b: str, threshold: float) -> bool:
    """Whether two normalised texts are the same or nearly the same."""
    if a == b:
        return True
    total = len(a) + len(b)
    if 2 * min(len(a), len(b)) < threshold * total:
        return False  # the ratio 2 * matches / total cannot reach the threshold
    if 2 * (_letters(a) & _letters(b)).total() < threshold * total:
        return False  # nor can it with the characters they share (``quick_ratio``, cached)
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold


class SpamDetector(Detector):
    """Detector for ``spam`` conditions; always scores ``repeat``, ``burst`` and ``links``."""

    name = "spam"
    cost = 4
    reads: frozenset[str] = frozenset({"sender_recent"})
    categories: tuple[str, ...] = ("repeat", "burst", "links")

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """The three spam categories for ``message`` given the sender's recent messages."""
        window = _int(condition, "windowSeconds", 600)
        recent = [
            m
            for m in ctx.sender_recent
            if m.id != message.id and message.sent_at - window <= m.sent_at <= message.sent_at
        ]
        text = message_text(message)
        return [
            self._repeat(message, text, recent, condition, window),
            self._burst(message, recent, condition),
            self._links(text, condition),
        ]

    def _repeat(
        self,
        message: MessageView,
        text: str,
        recent: Sequence[MessageView],
        condition: Condition,
        window: int,
    ) -> Detection:
        limit = _int(condition, "repeatThreshold", 3)
        min_length = _int(condition, "minLength", 12)
        ratio_param = condition.param("similarity", 0.9)
        ratio = float(ratio_param) if isinstance(ratio_param, int | float) else 0.9
        mine = normalized(text)
        if len(mine) < min_length:
            return Detection(self.name, "repeat", 0.0, "")
        if condition.param("acrossConversations", False) is True:
            # One similar text per other conversation counts; the sender's own chat is
            # skipped before any comparison (the common case costs nothing).
            places: set[str] = {message.conversation_id}
            for m in recent:
                if m.conversation_id not in places and similar(
                    mine, normalized(message_text(m)), ratio
                ):
                    places.add(m.conversation_id)
            count = len(places)
            reason = f"sent to {count} conversations in {window} s" if count > 1 else ""
        else:
            count = 1 + sum(similar(mine, normalized(message_text(m)), ratio) for m in recent)
            reason = f"sent {count} times in {window} s" if count > 1 else ""
        return Detection(self.name, "repeat", scaled(count, limit), reason)

    def _burst(
        self, message: MessageView, recent: Sequence[MessageView], condition: Condition
    ) -> Detection:
        limit = _int(condition, "burstCount", 8)
        seconds = _int(condition, "burstSeconds", 10)
        count = 1 + sum(m.sent_at >= message.sent_at - seconds for m in recent)
        reason = f"{count} messages in {seconds} s" if count > 1 else ""
        return Detection(self.name, "burst", scaled(count, limit), reason)

    def _links(self, text: str, condition: Condition) -> Detection:
        limit = _int(condition, "linkThreshold", 3)
        count = len(_LINK_RE.findall(text))
        reason = f"{count} links" if count else ""
        return Detection(self.name, "links", scaled(count, limit, start=0), reason)
