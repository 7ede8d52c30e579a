"""``ports.RetentionRepository`` on SQLite: the shared SQL of ``storage/retention.py``.

What the job deletes must not survive in the files: every connection runs with
``secure_delete`` on (freed cells and pages are overwritten with zeros), and ``compact``
then checkpoints the WAL into the database and truncates it, so no older copy of a page
stays in either file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from server.storage.retention import Exec, RetentionSql
from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.recent import RecentMessages
from server.storage.sqlite.transaction import insert_audit
from server.storage.sqlite.writer import Database
from server.storage.types import Audit

T = TypeVar("T")


class SqliteRetention(RetentionSql):
    def __init__(self, db: Database, path: Path, recent: RecentMessages) -> None:
        self._db = db
        self._path = path
        self._recent = recent

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit | None, at: int) -> T:
        async def op(conn: WriteConnection) -> T:
            async def run(sql: str, params: Sequence[Any]) -> int:
                return (await conn.execute(sql, tuple(params))).rowcount

            result = await fn(run)
            if audit is not None:
                await insert_audit(conn, audit, at)
            return result

        return await self._db.write(op)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.fetchall(sql, tuple(params)))

    async def _before_delete(self, run: Exec) -> None:
        """Nothing: every connection has ``secure_delete`` on (``writer.py``)."""

    async def _after_delete(self, run: Exec) -> None:
        """Nothing."""

    def forget(self) -> None:
        """Drop the in-memory index of recent messages (it refills from the table)."""
        self._recent.clear()

    async def compact(self) -> None:
        """Checkpoint the WAL into the database and truncate it (on its own connection: the
        writer's is inside transactions)."""

        def checkpoint() -> None:
            conn = sqlite3.connect(self._path, timeout=30)
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.close()

        await asyncio.to_thread(checkpoint)
