"""Reactions and thread replies in SQLite (migration 15, ``threads_schema.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.models import Message
from server.storage.sealing import MESSAGE_COLUMNS
from server.storage.sqlite.base import Repository
from server.storage.sqlite.conn import WriteConnection


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SqliteReactions(Repository):
    """``ports.ReactionRepository``."""

    async def add_reaction(self, message_id: int, uid: str, emoji: str, at: int) -> bool:
        async def op(conn: WriteConnection) -> bool:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO reactions (message_id, uid, emoji, at) VALUES (?, ?, ?, ?)",
                (message_id, uid, emoji, at),
            )
            return bool(cur.rowcount)

        return await self._db.write(op)

    async def remove_reaction(self, message_id: int, uid: str, emoji: str) -> bool:
        async def op(conn: WriteConnection) -> bool:
            cur = await conn.execute(
                "DELETE FROM reactions WHERE message_id = ? AND uid = ? AND emoji = ?",
                (message_id, uid, emoji),
            )
            return bool(cur.rowcount)

        return await self._db.write(op)

    async def reactions_of(self, message_ids: Sequence[int]) -> list[tuple[int, str, str]]:
        if not message_ids:
            return []
        rows = await self._db.fetchall(
            "SELECT message_id, uid, emoji FROM reactions"
            f" WHERE message_id IN ({_marks(len(message_ids))}) ORDER BY at, uid, emoji",
            tuple(message_ids),
        )
        return [(r["message_id"], r["uid"], r["emoji"]) for r in rows]

    async def reactions_by(self, uid: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT message_id, emoji, at FROM reactions WHERE uid = ? ORDER BY message_id, at",
            (uid,),
        )
        return [{"messageId": r["message_id"], "emoji": r["emoji"], "at": r["at"]} for r in rows]

    async def reply_counts(self, parent_ids: Sequence[int]) -> list[tuple[int, str, int]]:
        if not parent_ids:
            return []
        rows = await self._db.fetchall(
            "SELECT parent_id, sender, count(*) AS n FROM messages"
            f" WHERE parent_id IN ({_marks(len(parent_ids))}) AND deleted_at = 0"
            " AND status IN ('unmoderated', 'approved') GROUP BY parent_id, sender",
            tuple(parent_ids),
        )
        return [(r["parent_id"], r["sender"], r["n"]) for r in rows]

    async def thread(
        self,
        conversation_key: str,
        parent_id: int,
        *,
        before: int | None,
        limit: int,
        viewer: str | None,
    ) -> list[Message]:
        upper = before if before is not None else 2**62
        visible = (
            "" if viewer is None else " AND (status IN ('unmoderated', 'approved') OR sender = ?)"
        )
        params: tuple[Any, ...] = (parent_id, upper, conversation_key)
        if viewer is not None:
            params += (viewer,)
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = ? AND id < ?"
            f" AND conv_key = ?{visible} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [self._sealer.row_to_message(r) for r in reversed(rows)]
