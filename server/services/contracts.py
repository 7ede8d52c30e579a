"""The small interfaces between chat and the moderation side, and to outgoing events.

Chat -> moderation: ``ModerationGate`` (what the messaging service sends through).
Moderation -> chat: ``UserLookup``, ``GroupLookup`` (read) and ``VerdictApplier`` (the one
place a verdict touches chat). Both -> outside: ``EventSink`` (the outgoing webhooks). Chat and moderation -> media:
``MediaAttachments`` (sending, per-viewer links) and ``MediaSource`` (what detectors see).
The moderation side imports this module and nothing else of ``server.services``; a test
walks the imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from moderation.types import MediaContent, Verdict
from server.models import Group, Message, Moderation, Status, User
from server.storage.ports import TxOp
from server.storage.types import Audit, NewMessage


class EventSink(Protocol):
    """Where moderation events go (``user.banned``, ``message.reported``...); never blocks."""

    def emit(self, event: str, data: Mapping[str, Any]) -> None: ...


class NoEvents:
    """An event sink that drops every event (tests, and a server without webhooks)."""

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        return None


class ModerationGate(Protocol):
    """The seam to moderation: decides pending vs unmoderated and takes pending messages."""

    def covers(self, category: str, message_type: str, *, caption: bool = False) -> bool:
        """Whether an enabled rule covers this type (then the message starts ``pending``);
        ``caption``: a media message with a text, which the text rules judge too."""
        ...

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        """Queue a pending message to have ``verdict`` applied, or to be judged first when
        none is given; must not drop it."""
        ...

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        """The verdict on ``new`` before it is stored, when every rule on its type runs
        inline (no model, no provider); None when it must be judged later."""
        ...


class NoModeration:
    """A gate that moderates nothing: every message is ``unmoderated``."""

    def covers(self, category: str, message_type: str, *, caption: bool = False) -> bool:
        return False

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        raise RuntimeError("NoModeration got a pending message")

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        return None


class MediaAttachments(Protocol):
    """What messaging needs of the media service (``server.media.service.MediaService``)."""

    async def resolve_for_send(
        self, sender: str, media_id: str, message_type: str
    ) -> dict[str, Any]:
        """The attachment to store for a send of ``media_id``: the sender's own upload, of
        the type's kind, not yet attached (404, 400, 409 otherwise)."""
        ...

    async def claim(self, sender: str, media_id: str, message_id: int) -> None:
        """Record that the stored message carries the media (409 if another does)."""
        ...

    async def attachments(
        self, media_id: str, viewers: Sequence[User]
    ) -> dict[str, dict[str, Any]]:
        """The attachment object per viewer uid, its ``url`` signed for that viewer."""
        ...


class MediaPrivacy(Protocol):
    """The media side of the GDPR export and erasure."""

    async def export(self, uid: str) -> list[dict[str, Any]]: ...

    async def erase(self, uid: str) -> int: ...


class MediaSource(Protocol):
    """What moderation may look at of a message's attachment (decoded lazily, off the loop)."""

    def content(self, attachment: Mapping[str, Any]) -> MediaContent | None: ...


class UserLookup(Protocol):
    async def user(self, uid: str) -> User | None:
        """A live (not deleted) user, or None."""
        ...


class GroupLookup(Protocol):
    async def group(self, guid: str) -> Group | None:
        """A group, or None."""
        ...


class VerdictApplier(Protocol):
    """What the moderation side may do to chat."""

    async def apply_verdict(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        *,
        audit: Audit | None,
        also: TxOp | None = None,
    ) -> Message | None:
        """Record a verdict (conditional on the message's rev and status), then tell the
        sender and deliver or withdraw; None when the message moved on."""
        ...

    async def apply_rule_actions(self, message: Message, verdict: Verdict) -> None:
        """The side actions of the matched rules: kick, ban, block_user (logged, never raised)."""
        ...


class ProbationHold(Protocol):
    """New-account probation in review mode (``services/probation.py``): what the moderation
    side asks before it approves a message."""

    async def apply(self, verdict: Verdict, sender: str, *, stored: bool = True) -> Verdict:
        """``verdict``, or a review verdict when it approves a sender on probation
        (``stored``: whether the message is in the store already)."""
        ...
