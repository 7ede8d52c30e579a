"""Plain models that cross modules: users, groups, messages. Their ``to_json`` is the wire shape."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

from server.conversations import conversation_key


class Scope(IntEnum):
    """Group scopes, ordered by power: a member may act only on members strictly below."""

    NONE = 0  # not a member
    PARTICIPANT = 1
    MODERATOR = 2
    ADMIN = 3
    OWNER = 4

    @classmethod
    def parse(cls, name: str) -> Scope:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(StrEnum):
    UNMODERATED = "unmoderated"
    PENDING = "pending"
    APPROVED = "approved"
    DISAPPROVED = "disapproved"

    @property
    def deliverable(self) -> bool:
        return self in (Status.UNMODERATED, Status.APPROVED)


@dataclass(frozen=True, slots=True)
class User:
    uid: str
    name: str
    role: str
    tags: tuple[str, ...]
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    banned: bool = False
    deleted_at: int = 0
    #: This incarnation of the uid (random, never on the wire): tokens minted for it carry
    #: it, so an erased uid created again does not inherit the old account's tokens.
    account: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "name": self.name,
            "role": self.role,
            "tags": list(self.tags),
            "metadata": self.metadata,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "banned": self.banned,
        }


@dataclass(frozen=True, slots=True)
class Group:
    guid: str
    name: str
    type: str
    tags: tuple[str, ...]
    owner: str | None  # None: no user owns it (created with the API key and no owner)
    created_at: int
    updated_at: int

    def to_json(self, members: dict[str, Scope] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "guid": self.guid,
            "name": self.name,
            "type": self.type,
            "tags": list(self.tags),
            "owner": self.owner,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if members is not None:
            out["membersCount"] = len(members)
            out["members"] = [{"uid": u, "scope": s.label} for u, s in sorted(members.items())]
        return out


@dataclass(frozen=True, slots=True)
class Moderation:
    """Why a message was disapproved (or flagged): the first rule that decided it."""

    rule_id: str
    rule_name: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"ruleId": self.rule_id, "ruleName": self.rule_name, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Message:
    id: int
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
    sent_at: int
    updated_at: int
    status: Status
    edited_at: int = 0
    deleted_at: int = 0
    rev: int = 0
    #: receivers were sent some version of it (stays true after a later disapproval)
    shown: bool = False
    attachment: dict[str, Any] | None = None
    moderation: Moderation | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def conversation_key(self) -> str:
        """The storage key of its conversation (never the wire id, which can collide)."""
        return conversation_key(self.sender, self.receiver, self.receiver_type)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "muid": self.muid,
            "conversationId": self.conversation_id,
            "sender": self.sender,
            "receiver": self.receiver,
            "receiverType": self.receiver_type,
            "category": self.category,
            "type": self.type,
            "text": self.text,
            "attachment": self.attachment,
            "data": self.data,
            "metadata": self.metadata,
            "tags": list(self.tags),
            "parentId": self.parent_id,
            "sentAt": self.sent_at,
            "updatedAt": self.updated_at,
            "editedAt": self.edited_at,
            "deletedAt": self.deleted_at,
            "moderationStatus": self.status.value,
        }
