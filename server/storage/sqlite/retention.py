"""``ports.RetentionRepository`` on SQLite: the shared SQL of ``storage/retention.py``.

What the job deletes must not survive in the files: every connection runs with
``secure_delete`` on (freed cells and pages are overwritten with zeros), and ``compact``
then checkpoints the WAL into the database and truncates it, so no older copy of a page
stays in either file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from server.storage.retention import RetentionSql
from server.storage.sql import Exec
from server.storage.sqlite.recent import RecentMessages
from server.storage.sqlite.sql import SqliteSql
from server.storage.sqlite.writer import Database


class SqliteRetention(SqliteSql, RetentionSql):
    def __init__(self, db: Database, path: Path, recent: RecentMessages) -> None:
        super().__init__(db)
        self._path = path
        self._recent = recent

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
