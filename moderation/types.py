"""Value types that cross module boundaries: message views, detections, matches, verdicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UserView:
    """What the engine knows about a sender."""

    uid: str
    name: str
    role: str
    tags: tuple[str, ...]
    created_at: int


@dataclass(frozen=True, slots=True)
class ReceiverView:
    """What the engine knows about a receiver; ``type`` is ``"user"`` or ``"group"``."""

    type: str
    id: str
    name: str
    tags: tuple[str, ...]
    group_type: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One image the image detectors look at: an uploaded image (``at`` None) or a frame
    sampled from a video, ``at`` seconds in. ``data`` is encoded (PNG or JPEG)."""

    data: bytes
    mime_type: str
    at: float | None = None


class MediaContent(Protocol):
    """The uploaded media a message carries, as the engine may look at it.

    ``kind`` is ``image``, ``video``, ``audio`` or ``file``. ``frames()`` decodes on first
    call (off the event loop) and caches: an image gives one frame, a video its sampled
    frames (poster first), audio and files none. It may raise; a detector reports that as a
    failed detection, never as a clean one.
    """

    kind: str

    async def frames(self) -> Sequence[Frame]: ...


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message as the engine sees it (decrypted, with sender and receiver views).

    ``category`` is ``"message"`` or ``"custom"``; ``data`` is a JSON value or None;
    ``media`` is the uploaded file of a media message (image, video...), else None.
    """

    id: int
    conversation_id: str
    category: str
    message_type: str
    text: str | None
    data: object
    sender: UserView
    receiver: ReceiverView
    sent_at: int
    media: MediaContent | None = None

    @property
    def has_caption(self) -> bool:
        """A media message with a caption: its text is also judged by the text rules."""
        return (
            self.category == "message"
            and self.message_type in MEDIA_TYPES
            and bool(self.text and self.text.strip())
        )


#: Message types that carry an uploaded file.
MEDIA_TYPES = frozenset({"image", "video", "audio", "file"})


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector's confidence (0..1) for one category."""

    detector: str
    category: str
    confidence: float
    reason: str = ""


class Action(StrEnum):
    """What a matched rule asks for."""

    BLOCK = "block"
    REVIEW = "review"
    FLAG = "flag"
    KICK = "kick"
    BAN = "ban"
    BLOCK_USER = "block_user"


#: Actions that disapprove the message on their own. ``kick``, ``ban`` and ``block_user``
#: remove the sender (or cut them off from the receiver) because of this very message, so
#: delivering it would contradict the action.
DISAPPROVING = frozenset({Action.BLOCK, Action.KICK, Action.BAN, Action.BLOCK_USER})


@dataclass(frozen=True, slots=True)
class Match:
    """One rule that matched a message, at the revision that matched."""

    rule_id: str
    rule_name: str
    revision: int
    reason: str
    confidence: float
    actions: tuple[Action, ...]


class VerdictStatus(StrEnum):
    """The engine's decision; ``REVIEW`` keeps the message pending for a human."""

    APPROVED = "approved"
    DISAPPROVED = "disapproved"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of evaluating every enabled rule against one message.

    ``matches`` is ordered most severe first, so ``matches[0]`` is the rule that decided the
    status. ``actions`` is the union of the matched rules' actions, in that order.
    """

    status: VerdictStatus
    matches: tuple[Match, ...]
    actions: tuple[Action, ...]
    detections: tuple[Detection, ...]

    @property
    def flagged(self) -> bool:
        """Whether a matched rule asked to flag the message for the review queue."""
        return Action.FLAG in self.actions

    @property
    def clean(self) -> bool:
        """Approved with no rule matched: nothing to queue, audit or act on."""
        return self.status is VerdictStatus.APPROVED and not self.matches
