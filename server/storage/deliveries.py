"""Outgoing webhook deliveries: one row per event and webhook, payload sealed; the SQL both
backends share (``sqlite/deliveries.py`` and ``postgres/deliveries.py`` run it, see ``sql.py``,
each with its own ``due``).

Statuses: ``pending`` (waiting for its next attempt at ``next_at``), ``delivered``, ``failed``
(attempts exhausted, or the webhook was removed). Shares the chat repositories' ``Database``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from server.crypto import KeyRing
from server.storage.sql import SharedSql, SqlTx
from server.storage.types import Delivery, NewDelivery

COLUMNS = (
    "id, event_id, event, hook_id, url, kid, body, status, attempts, next_at, last_status,"
    " last_error, created_at, updated_at, delivered_at"
)


def aad(event_id: str, hook_id: str) -> bytes:
    return f"parley:webhook:{event_id}:{hook_id}".encode()


class DeliveriesSql(SharedSql):
    """``ports.DeliveryRepository``: insert, pick due, and update webhook deliveries."""

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    @abstractmethod
    async def due(self, now: float, *, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first."""

    async def add(self, deliveries: Sequence[NewDelivery], at: float) -> None:
        """Store new pending deliveries, due now."""
        if not deliveries:
            return
        keyring = self._keyring
        rows = []
        for d in deliveries:
            kid, body = keyring.seal(d.payload, aad(d.event_id, d.hook_id))
            rows.append(
                (d.event_id, d.event, d.hook_id, d.url, kid, body, float(at), int(at), int(at))
            )

        async def op(tx: SqlTx) -> None:
            await tx.executemany(
                "INSERT INTO webhook_deliveries (event_id, event, hook_id, url, kid, body, status,"
                " next_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                rows,
            )

        await self._transact(op)

    def row(self, row: Any) -> Delivery:
        payload = self._keyring.open(row["kid"], row["body"], aad(row["event_id"], row["hook_id"]))
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

    async def next_due(self) -> float | None:
        """When the earliest pending delivery is due, or None when none is pending."""
        row = await self._one(
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

        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_at = ?,"
                " last_status = ?, last_error = ?, updated_at = ?,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE id = ?",
                (
                    status,
                    attempts,
                    float(next_at),
                    last_status,
                    last_error,
                    int(at),
                    status,
                    int(at),
                    delivery_id,
                ),
            )

        await self._transact(op)

    async def pending_count(self) -> int:
        row = await self._one(
            "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'"
        )
        return 0 if row is None else int(row["n"])

    async def recent(self, *, status: str | None, event: str | None, limit: int) -> list[Delivery]:
        """The delivery log, newest first, optionally by status and event."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if event is not None:
            where.append("event = ?")
            params.append(event)
        sql = f"SELECT {COLUMNS} FROM webhook_deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self._all(sql + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [self.row(r) for r in rows]
