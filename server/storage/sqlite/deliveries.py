"""``ports.DeliveryRepository`` on SQLite: the shared SQL of ``storage/deliveries.py``."""

from __future__ import annotations

from server.crypto import KeyRing
from server.storage.deliveries import COLUMNS, DeliveriesSql
from server.storage.sqlite.sql import SqliteSql
from server.storage.sqlite.writer import Database
from server.storage.types import Delivery


class SqliteDeliveries(SqliteSql, DeliveriesSql):
    def __init__(self, db: Database, keyring: KeyRing) -> None:
        SqliteSql.__init__(self, db)
        DeliveriesSql.__init__(self, keyring)

    async def due(self, now: float, *, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due, oldest first (one process sends)."""
        rows = await self._all(
            f"SELECT {COLUMNS} FROM webhook_deliveries WHERE status = 'pending'"
            " AND next_at <= ? ORDER BY next_at, id LIMIT ?",
            (now, limit),
        )
        return [self.row(r) for r in rows]
