"""The inbox and the user directory in SQLite: index-backed reads over the heads and read
markers that the triggers of migration 9 keep (``inbox_schema.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from server.models import Message, User
from server.storage.inbox import ConversationHead, InboxPosition, prefix_bounds
from server.storage.sealing import MESSAGE_COLUMNS
from server.storage.sqlite.base import Repository
from server.storage.sqlite.inbox_schema import shown
from server.storage.sqlite.users import SqliteUsers


class SqliteInbox(Repository):
    """``ports.InboxRepository`` and ``ports.DirectoryRepository``."""

    async def direct_heads(
        self, uid: str, *, below: InboxPosition | None, limit: int
    ) -> list[ConversationHead]:
        """The user's 1:1 heads below ``below``, newest first: their rows of the primary key
        ``(uid, conv_key)``, sorted (migration 14 dropped the order index, see
        ``inbox_schema.py``)."""
        where = ""
        params: list[object] = [uid]
        if below is not None:
            # (last_at, last_id) is unique per user (a message is in one conversation), so
            # the key never breaks a tie here.
            where = " AND (last_at, last_id) < (?, ?)"
            params += [below[0], below[1]]
        rows = await self._db.fetchall(
            "SELECT conv_key, peer, last_id, last_at FROM inbox_direct WHERE uid = ?"
            f"{where} ORDER BY last_at DESC, last_id DESC LIMIT ?",
            (*params, limit),
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
            " WHERE m.uid = ?",
            (uid,),
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
        values = ", ".join("(?)" for _ in keys)
        rows = await self._db.fetchall(
            f"WITH page(k) AS (VALUES {values})"
            " SELECT page.k AS k, (SELECT count(*) FROM messages AS m"
            "   WHERE m.conv_key = page.k AND m.id > coalesce(r.read_id, 0)"
            f"  AND m.sender != ? AND {shown('m')} AND m.deleted_at = 0) AS unread"
            " FROM page LEFT JOIN read_markers AS r ON r.uid = ? AND r.conv_key = page.k",
            (*keys, uid, uid),
        )
        return {r["k"]: r["unread"] for r in rows}

    async def messages_by_ids(self, ids: Sequence[int]) -> list[Message]:
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN ({marks})", tuple(ids)
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
        clauses = ["deleted_at = 0", "uid > ?"]
        params: list[object] = [after or ""]
        if prefix:
            lo, hi = prefix_bounds(prefix)
            # The matches of each index range, then sorted: bounded by the matches, where
            # an OR over the table would walk the primary key through every user.
            clauses.append(
                "uid IN (SELECT uid FROM users WHERE lower(uid) >= ? AND lower(uid) < ?"
                " UNION SELECT uid FROM users WHERE lower(name) >= ? AND lower(name) < ?)"
            )
            params += [lo, hi, lo, hi]
        if exclude is not None:
            clauses.append("uid != ?")
            params.append(exclude)
        if sharing_with is not None:
            # From the candidate's memberships (members_uid) to the caller's (the primary
            # key): CROSS JOIN keeps that order, cheap for a candidate in few groups.
            clauses.append(
                "EXISTS (SELECT 1 FROM members AS b CROSS JOIN members AS a"
                " ON a.guid = b.guid AND a.uid = ? WHERE b.uid = users.uid)"
            )
            params.append(sharing_with)
        rows = await self._db.fetchall(
            f"SELECT * FROM users WHERE {' AND '.join(clauses)} ORDER BY uid LIMIT ?",
            (*params, limit),
        )
        return [SqliteUsers._row_to_user(r) for r in rows]
