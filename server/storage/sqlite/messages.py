"""Messages and receipts in SQLite: sealed rows, conditional verdicts, the recent index.

Reads of the newest messages of a conversation or sender (moderation context) are answered
from the in-memory ``RecentMessages`` when it can prove the answer complete; every write keeps
it true after its commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from server.models import Message, Moderation, Status
from server.storage.ports import TxOp
from server.storage.sealing import MESSAGE_COLUMNS, content_of, replace_message
from server.storage.sqlite.base import Repository
from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.recent import RECENT_PER_CONVERSATION, RECENT_PER_SENDER, RecentIndex
from server.storage.sqlite.transaction import SqliteTransaction, insert_audit
from server.storage.types import Audit, NewMessage


class SqliteMessages(Repository):
    """``ports.MessageRepository``."""

    async def insert_message(self, new: NewMessage) -> tuple[Message, bool]:
        """Insert, idempotent on ``(sender, muid)``: returns (message, created)."""

        async def op(conn: WriteConnection) -> tuple[Message, bool] | None:
            message_id = self._db.next_id
            kid, body = self._sealer.seal(message_id, new.conversation_id, content_of(new, None))
            cur = await conn.execute(
                f"INSERT OR IGNORE INTO messages ({MESSAGE_COLUMNS}, conv_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 0, ?, ?)",
                (
                    message_id,
                    new.muid,
                    new.conversation_id,
                    new.sender,
                    new.receiver,
                    new.receiver_type,
                    new.category,
                    new.type,
                    kid,
                    body,
                    new.parent_id,
                    new.at,
                    new.at,
                    new.status.value,
                    int(new.status.deliverable),
                    new.conversation_key,
                ),
            )
            if cur.rowcount == 0:
                return None  # a retry: the caller reads the stored row after the commit
            self._db.next_id = message_id + 1
            return new.as_message(message_id), True

        result = await self._db.write(op)
        if result is not None:
            self._recent.remember(result[0], new=True)
            return result
        stored = await self.find_by_muid(new.sender, new.muid)
        assert stored is not None
        return stored, False

    async def find_by_muid(self, sender: str, muid: str) -> Message | None:
        """The message ``sender`` stored under ``muid``, if any."""
        row = await self._db.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND muid = ?",
            (sender, muid),
        )
        return None if row is None else self._sealer.row_to_message(row)

    async def get_message(self, message_id: int) -> Message | None:
        row = await self._db.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        )
        return self._sealer.row_to_message(row) if row else None

    async def history(
        self, conversation_key: str, *, before: int | None, limit: int, viewer: str | None
    ) -> list[Message]:
        """Newest ``limit`` messages below ``before`` that ``viewer`` may see, oldest first.

        Receivers see only deliverable messages; the sender also sees its pending and
        disapproved ones; ``viewer=None`` (staff) sees everything.
        """
        upper = before if before is not None else 2**62
        if viewer is None:
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_key = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?"
            )
            params: tuple[Any, ...] = (conversation_key, upper, limit)
        else:
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_key = ? AND id < ?"
                " AND (status IN ('unmoderated', 'approved') OR sender = ?)"
                " ORDER BY id DESC LIMIT ?"
            )
            params = (conversation_key, upper, viewer, limit)
        rows = await self._db.fetchall(sql, params)
        return [self._sealer.row_to_message(r) for r in reversed(rows)]

    async def recent(self, conversation_key: str, *, before: int, limit: int) -> list[Message]:
        """The newest ``limit`` deliverable, undeleted messages below ``before``, oldest first."""

        def want(m: Message) -> bool:
            return m.id < before and not m.deleted_at and m.status.deliverable

        return await self._newest(
            self._recent.by_conversation,
            conversation_key,
            want,
            limit=limit,
            load=("conv_key = ?", RECENT_PER_CONVERSATION),
            exact=(
                "conv_key = ? AND id < ? AND deleted_at = 0"
                " AND status IN ('unmoderated', 'approved')",
                (before,),
            ),
        )

    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]:
        """The sender's newest ``limit`` messages sent at or after ``since``, oldest first."""

        def want(m: Message) -> bool:
            return m.sent_at >= since

        def reaches(oldest: Message) -> bool:
            return oldest.sent_at < since

        return await self._newest(
            self._recent.by_sender,
            sender,
            want,
            limit=limit,
            reaches=reaches,
            load=("sender = ?", RECENT_PER_SENDER),
            exact=("sender = ? AND sent_at >= ?", (since,)),
        )

    async def _newest(
        self,
        index: RecentIndex,
        key: str,
        want: Callable[[Message], bool],
        *,
        limit: int,
        reaches: Callable[[Message], bool] | None = None,
        load: tuple[str, int],
        exact: tuple[str, tuple[Any, ...]],
    ) -> list[Message]:
        """The newest ``limit`` messages of ``key`` passing ``want``, oldest first: from the
        in-memory index when it can prove the answer, else by loading the key's newest
        ``load[1]`` rows (``WHERE load[0]``) into it, else by the exact query ``exact``."""
        found = index.newest(key, want, limit=limit, reaches=reaches)
        if found is not None:
            return found
        where, per_key = load
        generation = index.generation(key)
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ?",
            (key, per_key),
        )
        loaded = [self._sealer.row_to_message(r) for r in rows]  # newest first
        complete = len(rows) < per_key
        index.install(key, generation, reversed(loaded), complete=complete)
        picked = [m for m in loaded if want(m)][:limit]
        if (
            len(picked) == limit
            or complete
            or (reaches is not None and loaded and reaches(loaded[-1]))
        ):
            return picked[::-1]
        exact_where, params = exact
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {exact_where} ORDER BY id DESC LIMIT ?",
            (key, *params, limit),
        )
        return [self._sealer.row_to_message(r) for r in reversed(rows)]

    async def update_content(self, message: Message, *, status: Status, at: int) -> Message:
        """Store edited content with a new revision (any pending verdict for the old text is void)."""
        updated = replace_message(
            message,
            status=status,
            edited_at=at,
            updated_at=at,
            rev=message.rev + 1,
            shown=message.shown or status.deliverable,
        )

        async def op(conn: WriteConnection) -> None:
            kid, body = self._sealer.seal(
                message.id, message.conversation_id, content_of(updated, None)
            )
            await conn.execute(
                "UPDATE messages SET kid = ?, body = ?, edited_at = ?, updated_at = ?, status = ?,"
                " rev = rev + 1, shown = MAX(shown, ?) WHERE id = ?",
                (kid, body, at, at, status.value, int(status.deliverable), message.id),
            )

        await self._db.write(op)
        self._recent.remember(updated)
        return updated

    async def mark_deleted(self, message: Message, at: int) -> Message:
        """Soft-delete: the row stays for ordering and receipts, its content is erased."""
        updated = replace_message(
            message,
            text=None,
            data=None,
            metadata={},
            attachment=None,
            deleted_at=at,
            updated_at=at,
        )

        async def op(conn: WriteConnection) -> None:
            kid, body = self._sealer.seal(
                message.id, message.conversation_id, content_of(updated, None)
            )
            await conn.execute(
                "UPDATE messages SET kid = ?, body = ?, deleted_at = ?, updated_at = ? WHERE id = ?",
                (kid, body, at, at, message.id),
            )

        await self._db.write(op)
        self._recent.remember(updated)
        return updated

    async def set_status(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        at: int,
        audit: Audit | None,
        also: TxOp | None = None,
    ) -> Message | None:
        """Conditional verdict: applies only if the row is still at ``message.rev`` and status.

        ``also`` runs in the same transaction (a review-queue entry). Returns the updated
        message, or None if the row moved on (edited, deleted, decided elsewhere).
        """
        updated = replace_message(
            message,
            status=status,
            moderation=moderation,
            updated_at=at,
            shown=message.shown or status.deliverable,
        )

        # The moderation reason lives in the sealed body; seal again only when it changes
        # (an approval of a message that never had one leaves the ciphertext as it is).
        sealed = (
            None
            if moderation == message.moderation
            else self._sealer.seal(
                message.id, message.conversation_id, content_of(updated, moderation)
            )
        )
        where = (message.id, message.rev, message.status.value)

        async def op(conn: WriteConnection) -> bool:
            shown = int(status.deliverable)
            if sealed is None:
                cur = await conn.execute(
                    "UPDATE messages SET status = ?, updated_at = ?, shown = MAX(shown, ?)"
                    " WHERE id = ? AND rev = ? AND status = ? AND deleted_at = 0",
                    (status.value, at, shown, *where),
                )
            else:
                cur = await conn.execute(
                    "UPDATE messages SET status = ?, kid = ?, body = ?, updated_at = ?,"
                    " shown = MAX(shown, ?)"
                    " WHERE id = ? AND rev = ? AND status = ? AND deleted_at = 0",
                    (status.value, *sealed, at, shown, *where),
                )
            if cur.rowcount == 0:
                return False
            await insert_audit(conn, audit, at)
            if also is not None:
                await also(SqliteTransaction(conn))
            return True

        if not await self._db.write(op):
            return None
        self._recent.remember(updated)
        return updated

    async def pending_ids(self) -> list[int]:
        rows = await self._db.fetchall(
            "SELECT id FROM messages WHERE status = 'pending' ORDER BY id"
        )
        return [r["id"] for r in rows]

    async def messages_since(self, since: int, *, limit: int) -> list[Message]:
        """Stored messages sent at or after ``since``, oldest first (for rule dry-runs)."""
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sent_at >= ? AND deleted_at = 0"
            " ORDER BY id LIMIT ?",
            (since, limit),
        )
        return [self._sealer.row_to_message(r) for r in rows]

    async def sent_count(self, sender: str, cap: int) -> int:
        row = await self._db.fetchone(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE sender = ? LIMIT ?)",
            (sender, cap),
        )
        return int(row[0]) if row else 0

    async def messages_of_sender(self, sender: str) -> list[Message]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ? ORDER BY id", (sender,)
        )
        return [self._sealer.row_to_message(r) for r in rows]

    async def add_receipt(self, message_id: int, uid: str, kind: str, at: int) -> bool:
        async def op(conn: WriteConnection) -> bool:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO receipts (message_id, uid, type, at) VALUES (?, ?, ?, ?)",
                (message_id, uid, kind, at),
            )
            return bool(cur.rowcount)

        return await self._db.write(op)

    async def receipts_of(self, uid: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT message_id, type, at FROM receipts WHERE uid = ? ORDER BY message_id", (uid,)
        )
        return [
            {"messageId": r["message_id"], "receiptType": r["type"], "at": r["at"]} for r in rows
        ]

    async def receipt_counts(
        self, message_ids: Sequence[int], *, exclude: Sequence[str] = ()
    ) -> dict[int, dict[str, int]]:
        if not message_ids:
            return {}
        ids = ",".join("?" * len(message_ids))
        skip = f" AND uid NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        rows = await self._db.fetchall(
            f"SELECT message_id, type, count(*) AS n FROM receipts WHERE message_id IN ({ids})"
            f"{skip} GROUP BY message_id, type",
            (*message_ids, *exclude),
        )
        counts: dict[int, dict[str, int]] = {}
        for r in rows:
            counts.setdefault(r["message_id"], {})[r["type"]] = r["n"]
        return counts
