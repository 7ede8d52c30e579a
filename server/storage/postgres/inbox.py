"""The inbox and the user directory in PostgreSQL: index-backed reads over the heads and read
markers that the triggers of migration 4 keep (``inbox_schema.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.models import Message, User
from server.storage.inbox import ConversationHead, InboxPosition, prefix_bounds
from server.storage.postgres.base import Repository
from server.storage.postgres.inbox_schema import shown
from server.storage.postgres.users import PostgresUsers
from server.storage.sealing import MESSAGE_COLUMNS


class PostgresInbox(Repository):
    """``ports.InboxRepository`` and ``ports.DirectoryRepository``."""

    async def direct_heads(
        self, uid: str, *, below: InboxPosition | None, limit: int
    ) -> list[ConversationHead]:
        """One range of ``inbox_direct_order`` ``(uid, last_at, last_id)``, newest first."""
        args: list[Any] = [uid, limit]
        where = ""
        if below is not None:
            where = " AND (last_at, last_id) < ($3, $4)"
            args += [below[0], below[1]]
        rows = await self._db.fetchall(
            "SELECT conv_key, peer, last_id, last_at FROM inbox_direct WHERE uid = $1"
            f"{where} ORDER BY last_at DESC, last_id DESC LIMIT $2",
            *args,
        )
        return [
            ConversationHead("user", r["peer"], r["conv_key"], r["last_id"], r["last_at"])
            for r in rows
        ]

    async def group_heads(self, uid: str) -> list[ConversationHead]:
        """Per membership, the newer of the group's deliverable head and the member's own."""
        rows = await self._db.fetchall(
            "SELECT m.guid, m.joined_at, h.last_id AS h_id, h.last_at AS h_at,"
            " o.last_id AS o_id, o.last_at AS o_at FROM members AS m"
            " LEFT JOIN inbox_heads AS h ON h.conv_key = 'g:' || m.guid"
            " LEFT JOIN inbox_own AS o ON o.uid = m.uid AND o.conv_key = 'g:' || m.guid"
            " WHERE m.uid = $1",
            uid,
        )
        heads = []
        for r in rows:
            last_id, at = max((r["h_id"] or 0, r["h_at"] or 0), (r["o_id"] or 0, r["o_at"] or 0))
            if not last_id:
                at = r["joined_at"]
            heads.append(ConversationHead("group", r["guid"], f"g:{r['guid']}", last_id, at))
        return heads

    async def unread_counts(self, uid: str, keys: Sequence[str]) -> dict[str, int]:
        """One statement: per key, a range of ``messages_conversation`` above the marker."""
        if not keys:
            return {}
        rows = await self._db.fetchall(
            "SELECT page.k AS k, (SELECT count(*) FROM messages AS m"
            "   WHERE m.conv_key = page.k AND m.id > coalesce(r.read_id, 0)"
            f"  AND m.sender <> $2 AND {shown('m')} AND m.deleted_at = 0) AS unread"
            " FROM unnest($1::text[]) AS page(k)"
            " LEFT JOIN read_markers AS r ON r.uid = $2 AND r.conv_key = page.k",
            list(keys),
            uid,
        )
        return {r["k"]: int(r["unread"]) for r in rows}

    async def messages_by_ids(self, ids: Sequence[int]) -> list[Message]:
        if not ids:
            return []
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ANY($1::bigint[])", list(ids)
        )
        return [self._sealer.row_to_message(r) for r in rows]

    async def search_users(
        self,
        prefix: str,
        *,
        after: str | None,
        limit: int,
        sharing_with: str | None,
        exclude: str | None,
    ) -> list[User]:
        """Two ranges (``users_lower_uid``, ``users_lower_name``), or the primary key when
        ``prefix`` is empty; the shared-group test is one seek per group of the candidate."""
        args: list[Any] = [after or ""]
        clauses = ["deleted_at = 0", "uid > $1"]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if prefix:
            lo, hi = prefix_bounds(prefix)
            uid_l, name_l = 'lower(uid COLLATE "C")', 'lower(name COLLATE "C")'
            lo_p, hi_p = arg(lo), arg(hi)
            clauses.append(
                f"uid IN (SELECT uid FROM users WHERE {uid_l} >= {lo_p} AND {uid_l} < {hi_p}"
                f" UNION SELECT uid FROM users WHERE {name_l} >= {lo_p} AND {name_l} < {hi_p})"
            )
        if exclude is not None:
            clauses.append(f"uid <> {arg(exclude)}")
        if sharing_with is not None:
            clauses.append(
                "EXISTS (SELECT 1 FROM members AS b JOIN members AS a ON a.guid = b.guid"
                f" AND a.uid = {arg(sharing_with)} WHERE b.uid = users.uid)"
            )
        rows = await self._db.fetchall(
            f"SELECT * FROM users WHERE {' AND '.join(clauses)} ORDER BY uid LIMIT {arg(limit)}",
            *args,
        )
        return [PostgresUsers._row_to_user(r) for r in rows]
