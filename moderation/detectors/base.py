"""The detector plug-in protocol and the context a detector is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from moderation.budget import PatternBudget
from moderation.normalize import text_of
from moderation.rules import Condition, WordList
from moderation.types import Detection, MessageView

#: Costs at or above this are "expensive" (models, network); cheaper ones run first and the
#: engine skips expensive rules once a ``block`` is certain.
EXPENSIVE: int = 100

#: The parts of ``DetectContext`` besides the lists that a detector may read.
READS_EVERYTHING: frozenset[str] = frozenset({"context", "sender_recent"})


@dataclass(frozen=True)
class DetectContext:
    """What a detector may look at besides the message itself.

    ``context`` holds the conversation's previous messages, oldest first, already cut to the
    condition's context window; ``sender_recent`` the sender's recent messages across all
    conversations, newest last. ``budget`` and ``rule_id`` are set only for a detector that
    has a time budget (``Detector.budget``): the message's budget, shared by all conditions
    of that detector, and the id of the rule whose condition is being judged. ``cascade``:
    the local models may settle a clear text at their cheap first stage (``Engine``'s
    ``cascade``); off, every text gets the full model.
    """

    lists: Mapping[str, WordList] = field(default_factory=dict)
    context: Sequence[MessageView] = ()
    sender_recent: Sequence[MessageView] = ()
    budget: PatternBudget | None = None
    rule_id: str = ""
    cascade: bool = False


class Detector(Protocol):
    """A detector serves the conditions of one kind (``name``).

    ``name`` and ``detect`` are required. Every other member has a default here; a detector
    class that subclasses ``Detector`` explicitly inherits them and overrides what it needs,
    and the engine calls each member directly:

    - ``cost`` (default ``EXPENSIVE``): orders detectors, lower runs first; at or above
      ``EXPENSIVE`` a condition never runs inline on the send path and is skipped once a
      ``block`` is certain. A detector that does not say is treated as expensive.
    - ``categories`` (default none): the categories it always scores; detectors whose
      categories are list ids (keywords, patterns, similarity) leave it empty.
    - ``reads`` (default both): which parts of ``DetectContext`` it reads, a subset of
      ``READS_EVERYTHING`` (``"context"``, ``"sender_recent"``); the server skips loading
      what no enabled rule's detector reads.
    - ``list_kinds`` (default none): the word-list kinds its conditions name (``listId``);
      the try-out endpoint runs it once per such list.
    - ``warm_up()`` (default: nothing): start loading models in the background, without
      blocking; called when an enabled rule needs this detector. Idempotent.
    - ``prepare(lists)`` (default: nothing): compile what it needs for these lists now, so
      the first message does not pay for it; called once per engine.
    - ``rules_out(message, lists)`` (default False): a cheap shared pre-check; True only
      when no condition of this kind can match ``message``, whatever its list or
      parameters, so the engine skips them all. It must not raise for a valid message.
    - ``settles(text, condition)`` (default False): True when a cheap stage decides ``text``
      for ``condition`` alone (a local model's cascade), so an expensive condition may still
      run inline for it.
    - ``budget()`` (default None): a fresh time budget that all conditions of this
      detector share on one message (regex patterns); the engine passes it back in
      ``DetectContext.budget``.

    ``detect`` returns detections with confidences in 0..1 and must not block the event loop
    for long; it may raise ``DetectorError`` (``BudgetExhausted``: undecided, held for
    review).
    """

    name: str
    cost: int = EXPENSIVE
    categories: tuple[str, ...] = ()
    reads: frozenset[str] = READS_EVERYTHING
    list_kinds: tuple[str, ...] = ()

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        """Detections for ``message`` under ``condition``."""
        ...

    def warm_up(self) -> None:
        """Start loading what the detector needs in the background (default: nothing)."""
        return None

    def prepare(self, lists: Mapping[str, WordList]) -> None:
        """Compile what the detector needs for ``lists`` now (default: nothing)."""
        return None

    def rules_out(self, message: MessageView, lists: Mapping[str, WordList]) -> bool:
        """True only when no condition of this kind can match ``message`` (default False)."""
        return False

    def settles(self, text: str, condition: Condition) -> bool:
        """True when a cheap stage decides ``text`` for ``condition`` without the expensive
        one (default False)."""
        return False

    def budget(self) -> PatternBudget | None:
        """A fresh time budget for one message, or None (default: no budget)."""
        return None


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
