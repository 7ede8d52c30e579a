"""Reactions and thread replies (SQLite migration 15, PostgreSQL 8: ``threads_schema.py``); the
SQL both backends share (``sqlite/reactions.py`` and ``postgres/reactions.py`` run it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.models import Message
from server.storage.sealing import MESSAGE_COLUMNS, Sealer
from server.storage.sql import SharedSql, SqlTx


class ReactionsSql(SharedSql):
    """``ports.ReactionRepository``."""

    _sealer: Sealer  # the backend's ``Repository`` sets it

    async def add_reaction(self, message_id: int, uid: str, emoji: str, at: int) -> bool:
        async def op(tx: SqlTx) -> bool:
            return bool(
                await tx.execute(
                    "INSERT INTO reactions (message_id, uid, emoji, at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    (message_id, uid, emoji, at),
                )
            )

        return await self._transact(op)

    async def remove_reaction(self, message_id: int, uid: str, emoji: str) -> bool:
        async def op(tx: SqlTx) -> bool:
            return bool(
                await tx.execute(
                    "DELETE FROM reactions WHERE message_id = ? AND uid = ? AND emoji = ?",
                    (message_id, uid, emoji),
                )
            )

        return await self._transact(op)

    async def reactions_of(self, message_ids: Sequence[int]) -> list[tuple[int, str, str]]:
        if not message_ids:
            return []
        among, params = self._any_of("message_id", message_ids)
        rows = await self._all(
            f"SELECT message_id, uid, emoji FROM reactions WHERE {among} ORDER BY at, uid, emoji",
            params,
        )
        return [(r["message_id"], r["uid"], r["emoji"]) for r in rows]

    async def reactions_by(self, uid: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT message_id, emoji, at FROM reactions WHERE uid = ? ORDER BY message_id, at",
            (uid,),
        )
        return [{"messageId": r["message_id"], "emoji": r["emoji"], "at": r["at"]} for r in rows]

    async def reply_counts(self, parent_ids: Sequence[int]) -> list[tuple[int, str, int]]:
        if not parent_ids:
            return []
        among, params = self._any_of("parent_id", parent_ids)
        rows = await self._all(
            f"SELECT parent_id, sender, count(*) AS n FROM messages WHERE {among}"
            " AND deleted_at = 0 AND status IN ('unmoderated', 'approved')"
            " GROUP BY parent_id, sender",
            params,
        )
        return [(r["parent_id"], r["sender"], int(r["n"])) for r in rows]

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
        rows = await self._all(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = ? AND id < ?"
            f" AND conv_key = ?{visible} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [self._sealer.row_to_message(r) for r in reversed(rows)]
