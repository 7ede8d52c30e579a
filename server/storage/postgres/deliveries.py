"""``ports.DeliveryRepository`` on PostgreSQL: the shared SQL of ``storage/deliveries.py``, and
a ``due`` that leases each row to one process."""

from __future__ import annotations

from typing import Any

from server.crypto import KeyRing
from server.storage.deliveries import COLUMNS, DeliveriesSql
from server.storage.postgres.sql import PostgresSql
from server.storage.postgres.write_tx import WriteTx
from server.storage.postgres.writer import Database
from server.storage.types import Delivery

#: Seconds a due delivery is reserved for the process that took it (past any attempt's
#: timeout): the other processes' senders leave it alone meanwhile.
LEASE = 300


class PostgresDeliveries(PostgresSql, DeliveriesSql):
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        PostgresSql.__init__(self, db)
        DeliveriesSql.__init__(self, keyring)

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
                f" RETURNING {COLUMNS}",
                float(now),
                limit,
            )
            return rows

        rows = await self._db.write(op)
        return [self.row(r) for r in sorted(rows, key=lambda r: r["id"])]
