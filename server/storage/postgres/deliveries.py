"""Outgoing webhook deliveries in PostgreSQL: one row per event and webhook, payload sealed.

Statuses: ``pending`` (waiting for its next attempt at ``next_at``), ``delivered``, ``failed``
(attempts exhausted, or the webhook was removed). Shares the chat repositories' ``Database``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.crypto import KeyRing
from server.storage.postgres.writer import Database, WriteTx
from server.storage.types import Delivery, NewDelivery

_COLUMNS = (
    "id, event_id, event, hook_id, url, kid, body, status, attempts, next_at, last_status,"
    " last_error, created_at, updated_at, delivered_at"
)


#: Seconds a due delivery is reserved for the process that took it (past any attempt's
#: timeout): the other processes' senders leave it alone meanwhile.
LEASE = 300


def _aad(event_id: str, hook_id: str) -> bytes:
    return f"parley:webhook:{event_id}:{hook_id}".encode()


class PostgresDeliveries:
    """``ports.DeliveryRepository``: insert, pick due, and update webhook deliveries."""

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        self._db = db
        self._keyring = keyring

    async def add(self, deliveries: Sequence[NewDelivery], at: float) -> None:
        """Store new pending deliveries, due now."""
        if not deliveries:
            return
        rows = []
        for d in deliveries:
            kid, body = self._keyring.seal(d.payload, _aad(d.event_id, d.hook_id))
            rows.append(
                (d.event_id, d.event, d.hook_id, d.url, kid, body, float(at), int(at), int(at))
            )

        async def op(tx: WriteTx) -> None:
            await tx.executemany(
                "INSERT INTO webhook_deliveries (event_id, event, hook_id, url, kid, body,"
                " status, next_at, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9)",
                rows,
            )

        await self._db.write(op)

    def _row(self, row: Any) -> Delivery:
        payload = self._keyring.open(row["kid"], row["body"], _aad(row["event_id"], row["hook_id"]))
        return Delivery(
            id=row["id"],
            event_id=row["event_id"],
            event=row["event"],
            hook_id=row["hook_id"],
            url=row["url"],
            payload=payload,
            status=row["status"],
            attempts=row["attempts"],
            next_at=row["next_at"],
            last_status=row["last_status"],
            last_error=row["last_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            delivered_at=row["delivered_at"],
        )

    async def due(self, now: float, *, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first, leased to the caller.

        Several processes share this table and each runs a sender: a due row is taken by one
        of them only (``FOR UPDATE SKIP LOCKED``) and its ``next_at`` moved ``LEASE`` seconds
        ahead in the same commit, so no other process sends it meanwhile. The attempt's
        ``update`` sets the real next time; a sender that dies mid-attempt leaves the row to
        be tried again when the lease ends (the same ``X-Parley-Delivery`` id).
        """

        async def op(tx: WriteTx) -> list[Any]:
            rows: list[Any] = await tx.fetch(
                f"UPDATE webhook_deliveries SET next_at = $1 + {LEASE}"
                " WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending'"
                " AND next_at <= $1 ORDER BY next_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_COLUMNS}",
                float(now),
                limit,
            )
            return rows

        rows = await self._db.write(op)
        return [self._row(r) for r in sorted(rows, key=lambda r: r["id"])]

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due, or None when none is pending."""
        row = await self._db.fetchone(
            "SELECT MIN(next_at) AS n FROM webhook_deliveries WHERE status = 'pending'"
        )
        return None if row is None or row["n"] is None else float(row["n"])

    async def update(
        self,
        delivery_id: int,
        *,
        status: str,
        attempts: int,
        next_at: float,
        last_status: int | None,
        last_error: str,
        at: float,
    ) -> None:
        """Record the outcome of an attempt."""

        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_at = $3,"
                " last_status = $4, last_error = $5, updated_at = $6,"
                " delivered_at = CASE WHEN $7 THEN $6 ELSE delivered_at END"
                " WHERE id = $8",
                status,
                attempts,
                float(next_at),
                last_status,
                last_error,
                int(at),
                status == "delivered",
                delivery_id,
            )

        await self._db.write(op)

    async def pending_count(self) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'"
        )
        return 0 if row is None else int(row["n"])

    async def recent(self, *, status: str | None, event: str | None, limit: int) -> list[Delivery]:
        """The delivery log, newest first, optionally by status and event."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("status", status), ("event", event)):
            if value is not None:
                params.append(value)
                where.append(f"{column} = ${len(params)}")
        sql = f"SELECT {_COLUMNS} FROM webhook_deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        params.append(limit)
        rows = await self._db.fetchall(sql + f" ORDER BY id DESC LIMIT ${len(params)}", *params)
        return [self._row(r) for r in rows]
