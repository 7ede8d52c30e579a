"""``ports.RetentionRepository`` on PostgreSQL: the shared SQL of ``storage/retention.py``,
its ``?`` placeholders numbered.

Deleted rows leave PostgreSQL's files when vacuum reuses their space, not at once: ``compact``
runs a plain ``VACUUM`` of the tables the job deleted from (``VACUUM FULL``, which rewrites
the files, locks the tables while it runs: an operator's choice, see docs/operations.md,
"Retention").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from server.storage.postgres.sanctions import numbered
from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.writer import Database, WriteTx
from server.storage.retention import Exec, RetentionSql
from server.storage.types import Audit

T = TypeVar("T")

_VACUUMED = ("messages", "receipts", "review", "reports", "media", "webhook_deliveries")


class PostgresRetention(RetentionSql):
    def __init__(self, db: Database, forget: Callable[[], None] | None = None) -> None:
        self._db = db
        #: Drops the opened rows the chat store keeps (``Sealer``'s cache, the sender windows').
        self._forget_rows = forget

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit | None, at: int) -> T:
        async def op(tx: WriteTx) -> T:
            async def run(sql: str, params: Sequence[Any]) -> int:
                return await tx.execute(numbered(sql), *params)

            result = await fn(run)
            if audit is not None:
                await insert_audit(tx, audit, at)
            return result

        return await self._db.write(op)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.fetchall(numbered(sql), *params))

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
