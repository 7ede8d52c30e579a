"""The detector plug-in protocol and the context a detector is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moderation.normalize import text_of
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

#: Costs at or above this are "expensive" (models, network); cheaper ones run first and the
#: engine skips expensive rules once a ``block`` is certain.
EXPENSIVE: int = 100


@dataclass(frozen=True)
class DetectContext:
    """What a detector may look at besides the message itself.

    ``context`` holds the conversation's previous messages, oldest first, already cut to the
    condition's context window; ``sender_recent`` the sender's recent messages across all
    conversations, newest last.
    """

    lists: Mapping[str, WordList] = field(default_factory=dict)
    context: Sequence[MessageView] = ()
    sender_recent: Sequence[MessageView] = ()


class Detector(Protocol):
    """A detector serves the conditions of one kind (``name``).

    ``cost`` orders detectors (lower runs first). ``categories`` are the categories it always
    scores; detectors whose categories are list ids (keywords, patterns) leave it empty.
    ``detect`` returns detections with confidences in 0..1 and must not block the event loop
    for long; it may raise ``DetectorError``.

    A detector may also say which parts of ``DetectContext`` it reads: ``reads``, a set of
    ``"context"`` and ``"sender_recent"``. Without it, both are assumed; with it, the server
    skips loading what no enabled rule's detector reads.
    """

    name: str
    cost: int
    categories: tuple[str, ...]

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """Detections for ``message`` under ``condition``."""
        ...


def message_text(message: MessageView) -> str:
    """The text a text detector scans: ``text``, plus string values of ``data`` for custom."""
    parts = [message.text or ""]
    if message.data is not None:
        parts.append(text_of(message.data))
    return "\n".join(p for p in parts if p)


def with_context(message: MessageView, ctx: DetectContext) -> tuple[str, int]:
    """The sender's own previous messages in ``ctx.context`` and this one, joined by spaces.

    Returns the joined text and the offset where this message's text starts, so a detector
    can ignore hits that lie wholly in earlier (already moderated) messages.
    """
    earlier = [
        message_text(m)
        for m in ctx.context
        if m.sender.uid == message.sender.uid and m.id != message.id
    ]
    prefix = " ".join(t for t in earlier if t)
    own = message_text(message)
    if not prefix:
        return own, 0
    return prefix + " " + own, len(prefix) + 1
