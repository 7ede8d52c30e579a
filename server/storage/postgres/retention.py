"""``ports.RetentionRepository`` on PostgreSQL: the shared SQL of ``storage/retention.py``,
its ``?`` placeholders numbered.

Deleted rows leave PostgreSQL's files when vacuum reuses their space, not at once: ``compact``
runs a plain ``VACUUM`` of the tables the job deleted from (``VACUUM FULL``, which rewrites
the files, locks the tables while it runs: an operator's choice, see docs/operations.md,
"Retention").
"""

from __future__ import annotations

from collections.abc import Callable

from server.storage.postgres.sql import PostgresSql
from server.storage.postgres.writer import Database
from server.storage.retention import RetentionSql
from server.storage.sql import Exec

_VACUUMED = ("messages", "receipts", "review", "reports", "media", "webhook_deliveries")


class PostgresRetention(PostgresSql, RetentionSql):
    def __init__(self, db: Database, forget: Callable[[], None] | None = None) -> None:
        super().__init__(db)
        #: Drops the opened rows the chat store keeps (``Sealer``'s cache, the sender windows').
        self._forget_rows = forget

    async def _before_delete(self, run: Exec) -> None:
        """Nothing: PostgreSQL has no per-delete overwrite (see ``compact``)."""

    async def _after_delete(self, run: Exec) -> None:
        """Nothing."""

    def forget(self) -> None:
        """Drop the opened message rows kept in memory (no recent index on this backend)."""
        if self._forget_rows is not None:
            self._forget_rows()

    async def compact(self) -> None:
        await self._db.maintenance(f"VACUUM {', '.join(_VACUUMED)}")
