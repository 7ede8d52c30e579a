"""Message rows: AES-256-GCM sealing of their content, and row <-> ``Message`` mapping.

The text, data, metadata, tags, attachment and moderation reason of a message are one JSON
object sealed with the message id and conversation id as associated data, so a sealed body
cannot be moved to another row; the key id is stored beside it. Shared by every backend, so a
row sealed by one opens on another.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

from server import jsoncodec
from server.crypto import KeyRing
from server.models import Message, Moderation, Status
from server.storage.types import NewMessage

MESSAGE_COLUMNS = (
    "id, muid, conversation_id, sender, receiver, receiver_type, category, type, kid, body,"
    " parent_id, sent_at, updated_at, edited_at, deleted_at, status, rev, shown"
)

dumps = jsoncodec.dumps


class Row(Protocol):
    """A database row readable by column name (``sqlite3.Row``, ``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...


def _aad(message_id: int, conversation_id: str) -> bytes:
    return f"parley:message:{message_id}:{conversation_id}".encode()


class Sealer:
    """Seals message content for a row and opens rows into messages, with one keyring.

    ``cache``: how many opened rows to keep, one per message id, with every column that can
    change (PostgreSQL, which has no in-memory recent index: moderation reads the same context
    and recent rows again for every new message of a conversation or sender; opening each
    costs more than reading it). A changed row (a verdict, an edit, an erasure) does not match
    and replaces the kept one: nothing stale is served. ``forget`` drops kept rows whose
    content was deleted. ``Message`` is frozen, so the kept one is shared.
    """

    def __init__(self, keyring: KeyRing, *, cache: int = 0) -> None:
        self.keyring = keyring
        self._cache_size = cache
        self._opened: OrderedDict[int, tuple[tuple[Any, ...], Message]] = OrderedDict()

    def forget(self, ids: Iterable[int] | None = None) -> None:
        """Drop the kept rows of ``ids`` (every one for None): their content is gone."""
        if ids is None:
            self._opened.clear()
            return
        for message_id in ids:
            self._opened.pop(message_id, None)

    def seal(
        self, message_id: int, conversation_id: str, content: dict[str, Any]
    ) -> tuple[str, bytes]:
        """(key id, sealed body) for a row's ``kid`` and ``body`` columns."""
        return self.keyring.seal(dumps(content).encode(), _aad(message_id, conversation_id))

    def row_to_message(self, row: Row) -> Message:
        """The message a row of ``MESSAGE_COLUMNS`` holds, its content opened."""
        if not self._cache_size:
            return self._row_to_message(row)
        message_id = row["id"]
        key = (
            row["body"], row["status"], row["rev"], row["updated_at"], row["edited_at"],
            row["deleted_at"], row["shown"], row["parent_id"],
        )  # fmt: skip
        kept = self._opened.get(message_id)
        if kept is not None and kept[0] == key:
            return kept[1]
        message = self._row_to_message(row)
        if kept is None and len(self._opened) >= self._cache_size:
            self._opened.popitem(last=False)  # oldest first out
        self._opened[message_id] = (key, message)
        return message

    def _row_to_message(self, row: Row) -> Message:
        content = json.loads(
            self.keyring.open(row["kid"], row["body"], _aad(row["id"], row["conversation_id"]))
        )
        mod = content.get("moderation")
        return Message(
            id=row["id"],
            muid=row["muid"],
            conversation_id=row["conversation_id"],
            sender=row["sender"],
            receiver=row["receiver"],
            receiver_type=row["receiver_type"],
            category=row["category"],
            type=row["type"],
            text=content.get("text"),
            data=content.get("data"),
            metadata=content.get("metadata") or {},
            tags=tuple(content.get("tags") or ()),
            parent_id=row["parent_id"],
            sent_at=row["sent_at"],
            updated_at=row["updated_at"],
            edited_at=row["edited_at"],
            deleted_at=row["deleted_at"],
            status=Status(row["status"]),
            rev=row["rev"],
            shown=bool(row["shown"]),
            attachment=content.get("attachment"),
            moderation=Moderation(mod["ruleId"], mod["ruleName"], mod["reason"]) if mod else None,
        )


def content_of(message: Message | NewMessage, moderation: Moderation | None) -> dict[str, Any]:
    """The sealed part of a message, as one JSON object."""
    content: dict[str, Any] = {
        "text": message.text,
        "data": message.data,
        "metadata": message.metadata,
        "tags": list(message.tags),
        "attachment": message.attachment,
    }
    if moderation is not None:
        content["moderation"] = moderation.to_json()
    return content


def replace_message(message: Message, **changes: Any) -> Message:
    return dataclasses.replace(message, **changes)
