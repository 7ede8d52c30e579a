"""Plain values that cross the storage ports (see ports.py): what callers hand a repository
and what it hands back. Nothing here knows which database stores them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.conversations import conversation_key
from server.models import Message, Status


@dataclass(frozen=True)
class NewMessage:
    """A message to insert; the store assigns ``id`` and seals the content."""

    muid: str
    conversation_id: str
    sender: str
    receiver: str
    receiver_type: str
    category: str
    type: str
    text: str | None
    data: Any
    metadata: dict[str, Any]
    tags: tuple[str, ...]
    parent_id: int | None
    attachment: dict[str, Any] | None
    status: Status
    at: int

    @property
    def conversation_key(self) -> str:
        """The storage key of its conversation (see server/conversations.py)."""
        return conversation_key(self.sender, self.receiver, self.receiver_type)

    def as_message(self, message_id: int) -> Message:
        """The message as it is once stored under ``message_id``."""
        return Message(
            id=message_id,
            muid=self.muid,
            conversation_id=self.conversation_id,
            sender=self.sender,
            receiver=self.receiver,
            receiver_type=self.receiver_type,
            category=self.category,
            type=self.type,
            text=self.text,
            data=self.data,
            metadata=self.metadata,
            tags=self.tags,
            parent_id=self.parent_id,
            sent_at=self.at,
            updated_at=self.at,
            status=self.status,
            shown=self.status.deliverable,
            attachment=self.attachment,
        )


@dataclass(frozen=True)
class AuditEntry:
    """A stored audit record."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "details": self.details,
        }


@dataclass(frozen=True)
class Audit:
    """An audit record to write in the same transaction as the change it describes."""

    actor: str
    action: str
    target: str
    details: dict[str, Any]


@dataclass(frozen=True)
class ReviewItem:
    """An open entry of the review queue."""

    message_id: int
    state: str
    rule_id: str | None
    at: int


@dataclass(frozen=True)
class NewDelivery:
    """An outgoing webhook delivery to store; the store seals ``payload``."""

    event_id: str
    event: str
    hook_id: str
    url: str
    payload: bytes


@dataclass(frozen=True)
class Delivery:
    """A stored webhook delivery, its payload opened."""

    id: int
    event_id: str
    event: str
    hook_id: str
    url: str
    payload: bytes
    status: str
    attempts: int
    next_at: float
    last_status: int | None
    last_error: str
    created_at: int
    updated_at: int
    delivered_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "eventId": self.event_id,
            "event": self.event,
            "webhookId": self.hook_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "nextAttemptAt": self.next_at if self.status == "pending" else None,
            "lastStatusCode": self.last_status,
            "lastError": self.last_error,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "deliveredAt": self.delivered_at,
        }


@dataclass(frozen=True)
class MediaRecord:
    """An uploaded file's metadata row (its bytes are encrypted files, never in a database).

    ``kid`` sealed the row's ``name`` and encrypted the blob and thumbnail files.
    ``attached_to`` is the message that carries it, once sent (None before).
    """

    id: str
    uploader: str
    kind: str
    mime_type: str
    name: str
    size: int
    kid: str
    created_at: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumb_mime: str | None = None
    thumb_size: int = 0
    attached_to: int | None = None
    #: When it was quarantined (matched a known-bad image list); 0: never. Kept for
    #: evidence, never served (``server/media/quarantine.py``).
    quarantined_at: int = 0

    def to_json(self) -> dict[str, Any]:
        """The metadata as clients and exports see it (no key id)."""
        body: dict[str, Any] = {
            "mediaId": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "size": self.size,
            "kind": self.kind,
            "createdAt": self.created_at,
        }
        for key, value in (
            ("width", self.width),
            ("height", self.height),
            ("duration", self.duration),
        ):
            if value is not None:
                body[key] = value
        if self.quarantined_at:
            body["quarantined"] = True
        return body


@dataclass(frozen=True)
class PushEndpoint:
    """Where one of a user's devices gets offline pushes (issue 16 item 7): ``kind`` is
    ``unifiedpush`` (an ntfy-style endpoint URL) or ``webhook`` (a signed POST)."""

    id: str
    uid: str
    device_id: str
    kind: str
    url: str
    include_text: bool
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "endpointId": self.id,
            "deviceId": self.device_id,
            "kind": self.kind,
            "url": self.url,
            "includeText": self.include_text,
            "createdAt": self.created_at,
        }
