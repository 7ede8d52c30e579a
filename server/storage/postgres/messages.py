"""Messages and receipts in PostgreSQL: sealed rows (as in SQLite), conditional verdicts.

No in-memory recent index here: several processes may write the same conversation, so the
newest messages of a conversation or sender (moderation context) are read from the database;
the sender's (read for every moderated message) through ``recent.SenderRecent``, which batches
the reads and keeps opened rows by row version.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from server.models import Message, Moderation, Status
from server.storage.ports import TxOp
from server.storage.postgres.base import Repository
from server.storage.postgres.recent import VERSION, SenderRecent
from server.storage.postgres.transaction import PostgresTransaction, insert_audit
from server.storage.postgres.write_tx import RELEASE_IDS, TAKE_GATE, WriteTx
from server.storage.sealing import MESSAGE_COLUMNS, content_of, replace_message
from server.storage.types import Audit, NewMessage

_DELIVERABLE = "status IN ('unmoderated', 'approved')"

#: A batch's new messages in one statement: one array per column, one element per row. It
#: also sets the id sequence to the next id not used (ids of retries at the end given back;
#: $16 is the first of these rows' ids). One row per inserted message, or one of NULLs.
_INSERT_ROWS = f"""
WITH {{gate}}ins AS (
INSERT INTO messages AS m ({MESSAGE_COLUMNS}, conv_key)
SELECT r.id, r.muid, r.conversation_id, r.sender, r.receiver, r.receiver_type, r.category,
       r.type, r.kid, r.body, r.parent_id, r.at, r.at, 0, 0, r.status, 0, r.shown, r.conv_key
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::bytea[], $11::bigint[], $12::bigint[],
            $13::text[], $14::int[], $15::text[])
     AS r(id, muid, conversation_id, sender, receiver, receiver_type, category, type, kid,
          body, parent_id, at, status, shown, conv_key){{after_gate}}
ORDER BY r.id
ON CONFLICT (sender, muid) DO NOTHING
RETURNING m.id, {VERSION} AS v
), seq AS MATERIALIZED (
SELECT setval('messages_id_seq', coalesce(max(ins.id) + 1, $16), false) AS next FROM ins
){{release}}
SELECT ins.id, ins.v, seq.next FROM seq{{after_release}} LEFT JOIN ins ON true
"""
#: Inside a transaction (``BEGIN`` ... ``COMMIT``, which takes the gate and releases the lock).
_INSERT_IN_TX = _INSERT_ROWS.format(gate="", after_gate="", release="", after_release="")
#: As the whole transaction (``WriteTx.single``): the commit gate is taken before the rows go
#: in, the id lock released once they are in and the sequence has moved past them.
_INSERT_AS_TX = _INSERT_ROWS.format(
    gate=f"gate AS MATERIALIZED (SELECT {TAKE_GATE}),\n",
    after_gate=", gate",
    release=f", released AS MATERIALIZED (SELECT {RELEASE_IDS} FROM seq)",
    after_release=" CROSS JOIN released",
)


class _Row:
    """A new message's column values, staged in its transaction; ``version`` once written
    (None: the row was not inserted, its ``(sender, muid)`` is stored already)."""

    __slots__ = ("values", "version")

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        self.version: str | None = None


async def _insert_rows(tx: WriteTx, rows: list[_Row]) -> None:
    """Insert the staged rows (``WriteTx.stage``) in one statement, which also sets the id
    sequence (the ids taken by retries at the end of the batch given back)."""
    inserted = await tx.fetch(
        _INSERT_AS_TX if tx.single else _INSERT_IN_TX,
        *zip(*(r.values for r in rows), strict=True),
        rows[0].values[0],
    )
    versions = {r["id"]: r["v"] for r in inserted}
    for row in rows:
        row.version = versions.get(row.values[0])
    tx.ids_from(inserted[0]["next"])


class PostgresMessages(Repository):
    """``ports.MessageRepository``."""

    @functools.cached_property
    def _sender_recent(self) -> SenderRecent:
        return SenderRecent(self._db, self._sealer)

    def forget_opened(self, ids: Iterable[int] | None = None) -> None:
        self._sealer.forget(ids)
        self._sender_recent.forget(ids)

    async def insert_message(self, new: NewMessage) -> tuple[Message, bool]:
        """Insert, idempotent on ``(sender, muid)``: returns (message, created).

        The row is staged: the batch's new messages are one ``INSERT`` (``_insert_rows``)."""

        async def op(tx: WriteTx) -> tuple[Message, _Row]:
            message_id = await tx.message_id()
            kid, body = self._sealer.seal(message_id, new.conversation_id, content_of(new, None))
            row = _Row(
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
                    new.status.value,
                    int(new.status.deliverable),
                    new.conversation_key,
                )
            )
            return new.as_message(message_id), tx.stage(_insert_rows, row)

        message, row = await self._db.write(op)
        if row.version is not None:
            self._sender_recent.remember(message, row.version)  # committed: moderation reads it
            return message, True
        # A retry of a stored (sender, muid): the stored message, read after the commit.
        stored = await self.find_by_muid(new.sender, new.muid)
        assert stored is not None
        return stored, False

    async def _select(self, where: str, *args: Any) -> list[Message]:
        rows = await self._db.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where}", *args
        )
        return [self._sealer.row_to_message(r) for r in rows]

    async def find_by_muid(self, sender: str, muid: str) -> Message | None:
        """The message ``sender`` stored under ``muid``, if any."""
        found = await self._select("sender = $1 AND muid = $2", sender, muid)
        return found[0] if found else None

    async def get_message(self, message_id: int) -> Message | None:
        found = await self._select("id = $1", message_id)
        return found[0] if found else None

    async def history(
        self, conversation_key: str, *, before: int | None, limit: int, viewer: str | None
    ) -> list[Message]:
        """Newest ``limit`` messages below ``before`` that ``viewer`` may see, oldest first.

        Receivers see only deliverable messages; the sender also sees its pending and
        disapproved ones; ``viewer=None`` (staff) sees everything.
        """
        upper = before if before is not None else 2**62
        if viewer is None:
            found = await self._select(
                "conv_key = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                conversation_key,
                upper,
                limit,
            )
        else:
            found = await self._select(
                f"conv_key = $1 AND id < $2 AND ({_DELIVERABLE} OR sender = $3)"
                " ORDER BY id DESC LIMIT $4",
                conversation_key,
                upper,
                viewer,
                limit,
            )
        return found[::-1]

    async def recent(self, conversation_key: str, *, before: int, limit: int) -> list[Message]:
        """The newest ``limit`` deliverable, undeleted messages below ``before``, oldest first."""
        found = await self._select(
            f"conv_key = $1 AND id < $2 AND deleted_at = 0 AND {_DELIVERABLE}"
            " ORDER BY id DESC LIMIT $3",
            conversation_key,
            before,
            limit,
        )
        return found[::-1]

    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]:
        """The sender's newest ``limit`` messages sent at or after ``since``, oldest first."""
        return await self._sender_recent.recent_of_sender(sender, since=since, limit=limit)

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
        kid, body = self._sealer.seal(
            message.id, message.conversation_id, content_of(updated, None)
        )

        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "UPDATE messages SET kid = $1, body = $2, edited_at = $3, updated_at = $3,"
                " status = $4, rev = rev + 1, shown = GREATEST(shown, $5) WHERE id = $6",
                kid,
                body,
                at,
                status.value,
                int(status.deliverable),
                message.id,
            )

        await self._db.write(op)
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
        kid, body = self._sealer.seal(
            message.id, message.conversation_id, content_of(updated, None)
        )

        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "UPDATE messages SET kid = $1, body = $2, deleted_at = $3, updated_at = $3"
                " WHERE id = $4",
                kid,
                body,
                at,
                message.id,
            )

        await self._db.write(op)
        self.forget_opened((message.id,))  # its content is gone: not even in memory
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
        # The moderation reason lives in the sealed body; seal again only when it changes.
        sealed = (
            None
            if moderation == message.moderation
            else self._sealer.seal(
                message.id, message.conversation_id, content_of(updated, moderation)
            )
        )
        shown = int(status.deliverable)
        where = "id = $4 AND rev = $5 AND status = $6 AND deleted_at = 0"
        args = (status.value, at, shown, message.id, message.rev, message.status.value)

        async def op(tx: WriteTx) -> bool:
            if sealed is None:
                changed = await tx.execute(
                    "UPDATE messages SET status = $1, updated_at = $2,"
                    f" shown = GREATEST(shown, $3) WHERE {where}",
                    *args,
                )
            else:
                changed = await tx.execute(
                    "UPDATE messages SET status = $1, updated_at = $2,"
                    f" shown = GREATEST(shown, $3), kid = $7, body = $8 WHERE {where}",
                    *args,
                    *sealed,
                )
            if not changed:
                return False
            await insert_audit(tx, audit, at)
            if also is not None:
                await also(PostgresTransaction(tx))
            return True

        if not await self._db.write(op):
            return None
        return updated

    async def pending_ids(self) -> list[int]:
        rows = await self._db.fetchall(
            "SELECT id FROM messages WHERE status = 'pending' ORDER BY id"
        )
        return [int(r["id"]) for r in rows]

    async def messages_since(self, since: int, *, limit: int) -> list[Message]:
        """Stored messages sent at or after ``since``, oldest first (for rule dry-runs)."""
        return await self._select(
            "sent_at >= $1 AND deleted_at = 0 ORDER BY id LIMIT $2", since, limit
        )

    async def sent_count(self, sender: str, cap: int) -> int:
        row = await self._db.fetchone(
            "SELECT count(*) FROM (SELECT 1 FROM messages WHERE sender = $1 LIMIT $2) AS s",
            sender,
            cap,
        )
        return int(row[0]) if row else 0

    async def messages_of_sender(self, sender: str) -> list[Message]:
        return await self._select("sender = $1 ORDER BY id", sender)

    async def add_receipt(self, message_id: int, uid: str, kind: str, at: int) -> bool:
        async def op(tx: WriteTx) -> bool:
            return bool(
                await tx.execute(
                    "INSERT INTO receipts (message_id, uid, type, at) VALUES ($1, $2, $3, $4)"
                    " ON CONFLICT DO NOTHING",
                    message_id,
                    uid,
                    kind,
                    at,
                )
            )

        return await self._db.write(op)

    async def receipts_of(self, uid: str) -> list[dict[str, Any]]:
        rows = await self._db.fetchall(
            "SELECT message_id, type, at FROM receipts WHERE uid = $1 ORDER BY message_id", uid
        )
        return [
            {"messageId": r["message_id"], "receiptType": r["type"], "at": r["at"]} for r in rows
        ]

    async def receipt_counts(
        self, message_ids: Sequence[int], *, exclude: Sequence[str] = ()
    ) -> dict[int, dict[str, int]]:
        if not message_ids:
            return {}
        rows = await self._db.fetchall(
            "SELECT message_id, type, count(*) AS n FROM receipts"
            " WHERE message_id = ANY($1::bigint[]) AND NOT (uid = ANY($2::text[]))"
            " GROUP BY message_id, type",
            list(message_ids),
            list(exclude),
        )
        counts: dict[int, dict[str, int]] = {}
        for r in rows:
            counts.setdefault(r["message_id"], {})[r["type"]] = r["n"]
        return counts
