"""The writer's connection as write operations see it.

Write operations are ``async def op(conn: WriteConnection)`` and use ``await
conn.execute(...)`` like aiosqlite's API, but each statement runs at once on the event loop's
thread: an INSERT or UPDATE inside an open transaction touches only SQLite's page cache and
costs microseconds, less than handing it to another thread and back (which aiosqlite does
for every statement). The one step that waits for the disk, COMMIT with its fsync, is run in a
thread by the writer (``writer.Database``), and nothing else uses the connection while it
does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Sequence
from types import TracebackType
from typing import Any


class WriteCursor:
    """The result of ``execute``: awaitable and an async context manager, like aiosqlite's
    cursor, but already complete."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def __await__(self) -> Generator[Any, None, WriteCursor]:
        return self
        yield  # a generator that finishes at once: ``await`` never suspends

    async def __aenter__(self) -> WriteCursor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._cursor.close()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    async def fetchone(self) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._cursor.fetchone()
        return row

    async def fetchall(self) -> list[sqlite3.Row]:
        return list(self._cursor.fetchall())


class WriteConnection:
    """A ``sqlite3.Connection`` (``check_same_thread=False``, autocommit mode) with the
    aiosqlite-shaped ``execute`` and ``executemany`` the write operations use."""

    __slots__ = ("raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> WriteCursor:
        return WriteCursor(self.raw.execute(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> WriteCursor:
        return WriteCursor(self.raw.executemany(sql, parameters))
