"""Reactions and thread replies in PostgreSQL (migration 8, ``threads_schema.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.models import Message
from server.storage.postgres.base import Repository
from server.storage.postgres.writer import WriteTx
from server.storage.sealing import MESSAGE_COLUMNS


class PostgresReactions(Repository):
    """``ports.ReactionRepository``."""

    async def add_reaction(self, message_id: int, uid: str, emoji: str, at: int) -> bool:
        async def op(tx: WriteTx) -> bool:
            return bool(
                await tx.execute(
                    "INSERT INTO reactions (message_id, uid, emoji, at) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT DO NOTHING",
                    message_id,
                    uid,
                    emoji,
                    at,
                )
            )

        return await self._db.write(op)

    async def remove_reaction(self, message_id: int, uid: str, emoji: str) -> bool:
        async def op(tx: WriteTx) -> bool:
            return bool(
                await tx.execute(
                    "DELETE FROM reactions WHERE message_id = $1 AND uid = $2 AND emoji = $3",
                    message_id,
                    uid,
                    emoji,
                )
            )

        return await self._db.write(op)

    async def reactions_of(self, message_ids: Sequence[int]) -> list[tuple[int, str, str]]:
        if not message_ids:
            return []
        rows = await self._db.fetchall(
            "SELECT message_id, uid, emoji FROM reactions WHERE message_id = ANY($1::bigint[])"
            " ORDER BY at, uid, emoji",
            list(message_ids),
        )
        return [(r["message_id"], r["uid"], r["emoji"]) for r in rows]

    async def reactions_by(self, uid: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT message_id, emoji, at FROM reactions WHERE uid = $1 ORDER BY message_id, at",
            uid,
        )
        return [{"messageId": r["message_id"], "emoji": r["emoji"], "at": r["at"]} for r in rows]

    async def reply_counts(self, parent_ids: Sequence[int]) -> list[tuple[int, str, int]]:
        if not parent_ids:
            return []
        rows = await self._db.fetchall(
            "SELECT parent_id, sender, count(*) AS n FROM messages"
            " WHERE parent_id = ANY($1::bigint[]) AND deleted_at = 0"
            " AND status IN ('unmoderated', 'approved') GROUP BY parent_id, sender",
            list(parent_ids),
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
        args: list[Any] = [parent_id, upper, conversation_key, limit]
        visible = ""
        if viewer is not None:
            visible = " AND (status IN ('unmoderated', 'approved') OR sender = $5)"
            args.append(viewer)
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE parent_id = $1 AND id < $2"
            f" AND conv_key = $3{visible} ORDER BY id DESC LIMIT $4",
            *args,
        )
        return [self._sealer.row_to_message(r) for r in reversed(rows)]
