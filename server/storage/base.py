"""The storage interface the chat service depends on, so another backend can replace SQLite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.conversations import conversation_key
from server.models import Group, Message, Moderation, Scope, Status, User


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


class Store(Protocol):
    """Durable state. Every write returns only after its transaction is committed."""

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    # users
    async def create_user(self, user: User, audit: Audit) -> None: ...
    async def get_user(self, uid: str) -> User | None: ...
    async def update_user(self, user: User, audit: Audit) -> None: ...
    async def delete_user(self, uid: str, at: int, *, erase: bool, audit: Audit) -> None: ...

    # groups
    async def create_group(self, group: Group, audit: Audit) -> None: ...
    async def get_group(self, guid: str) -> Group | None: ...
    async def members(self, guid: str) -> dict[str, Scope]: ...
    async def groups_of(self, uid: str) -> list[str]: ...
    async def set_member(
        self, guid: str, uid: str, scope: Scope, at: int, audit: Audit
    ) -> None: ...
    async def remove_member(self, guid: str, uid: str, audit: Audit) -> None: ...
    async def ban(
        self, guid: str, uid: str, reason: str, by: str, at: int, audit: Audit
    ) -> None: ...
    async def unban(self, guid: str, uid: str, audit: Audit) -> None: ...
    async def is_banned(self, guid: str, uid: str) -> bool: ...

    # blocks
    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]: ...
    async def add_blocks(self, blocker: str, uids: Sequence[str], at: int) -> None: ...
    async def remove_block(self, blocker: str, uid: str) -> None: ...

    # messages
    async def insert_message(self, new: NewMessage) -> tuple[Message, bool]: ...
    async def get_message(self, message_id: int) -> Message | None: ...
    async def find_by_muid(self, sender: str, muid: str) -> Message | None: ...
    async def history(
        self, conversation_key: str, *, before: int | None, limit: int, viewer: str | None
    ) -> list[Message]: ...
    async def recent(self, conversation_key: str, *, before: int, limit: int) -> list[Message]: ...
    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]: ...
    async def update_content(self, message: Message, *, status: Status, at: int) -> Message: ...
    async def mark_deleted(self, message: Message, at: int) -> Message: ...
    async def set_status(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        at: int,
        audit: Audit | None,
        also: Any = None,
    ) -> Message | None: ...
    async def messages_since(self, since: int, *, limit: int) -> list[Message]: ...
    async def pending_ids(self) -> list[int]: ...
    async def messages_of_sender(self, sender: str) -> list[Message]: ...
    async def add_receipt(self, message_id: int, uid: str, kind: str, at: int) -> bool: ...
    async def receipts_of(self, uid: str) -> list[dict[str, Any]]: ...

    # audit
    async def add_audit(self, audit: Audit, at: int) -> None: ...
    async def audit_since(self, since: int, limit: int) -> list[AuditEntry]: ...
