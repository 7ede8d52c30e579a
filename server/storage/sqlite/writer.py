"""The SQLite database: one writer task with group commit, one reader connection.

Every write is a small coroutine (an *op*) queued to the writer. The writer takes all the ops
waiting, runs them in one transaction and commits once, then resolves each op's future: a
caller hears back only after its row is durable, and concurrent senders share one fsync.
If any op in a batch fails, the batch is rolled back and each op is re-run in a transaction
of its own, so one bad op never costs the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.migrations import MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[WriteConnection], Awaitable[Any]]


class Database:
    """The connections and the writer. ``open()`` migrates; ``close()`` drains the writer first."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        batch_max: int = 512,
        queue_size: int = 10_000,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue(
            queue_size
        )
        self._writer: WriteConnection | None = None
        # COMMIT (the fsync) runs here, off the event loop; statements run on the loop.
        self._commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        self._reader: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        #: The id the next inserted message takes. Message ids are assigned here, by the
        #: writer (increasing in storage order), so that content can be sealed with its id
        #: before the insert; a rolled-back batch restores it.
        self.next_id = 1
        self.batches = 0
        self.ops = 0

    # ----------------------------------------------------------------- lifecycle

    def _pragmas(self) -> tuple[str, ...]:
        return (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={self._synchronous}",
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
            # Freed space is overwritten with zeros on every write, whatever the build's
            # default: a deleted, edited or erased message leaves nothing in the file.
            "PRAGMA secure_delete=ON",
        )

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in self._pragmas():
            await conn.execute(pragma)
        return conn

    def _connect_writer(self) -> WriteConnection:
        raw = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        for pragma in self._pragmas():
            raw.execute(pragma)
        return WriteConnection(raw)

    async def open(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Owner only (0600): users, groups and metadata are stored in the clear. SQLite gives
        # the -wal and -shm files the database file's mode; files made by older versions
        # (0644) are tightened here.
        os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        self._writer = self._connect_writer()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self._path}{suffix}", 0o600)
        await self._migrate(self._writer)
        self._reader = await self._connect()
        await self._reader.execute("PRAGMA query_only=ON")
        async with self._writer.execute("SELECT COALESCE(MAX(id), 0) FROM messages") as cur:
            row = await cur.fetchone()
        assert row is not None
        self.next_id = int(row[0]) + 1
        self._task = asyncio.create_task(self._run_writer(), name="sqlite-writer")

    async def _commit(self, conn: WriteConnection) -> None:
        """COMMIT in the commit thread: the event loop keeps serving while the disk syncs."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commit_thread, conn.raw.execute, "COMMIT")

    async def _migrate(self, conn: WriteConnection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        assert row is not None
        version = int(row[0])
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in split_statements(sql):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={number}")
                await self._commit(conn)
            except BaseException:
                conn.raw.rollback()
                raise
            log.info("applied migration %d", number)

    async def close(self) -> None:
        if self._task is not None:
            # Queued writes may already be promised to clients: the writer drains them first.
            await self._queue.put(None)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._writer is not None:
            self._writer.raw.close()
        if self._reader is not None:
            await self._reader.close()
        self._writer = None
        self._reader = None
        self._commit_thread.shutdown(wait=True)

    # ----------------------------------------------------------------- the writer

    async def write(self, op: Callable[[WriteConnection], Awaitable[T]]) -> T:
        """Run ``op`` inside a write transaction; return its result after the commit."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return await fut

    async def _run_writer(self) -> None:
        assert self._writer is not None
        conn = self._writer
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                await self._commit_batch(conn, batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise
            except Exception:  # the database itself failed: fail the callers, keep serving
                log.exception("write batch failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("storage write failed"))
            if stop:
                return

    async def _commit_batch(
        self, conn: WriteConnection, batch: list[tuple[Op, asyncio.Future[Any]]]
    ) -> None:
        self.batches += 1
        self.ops += len(batch)
        results: list[Any] = []
        next_id = self.next_id
        conn.raw.execute("BEGIN IMMEDIATE")
        try:
            for op, _ in batch:
                results.append(await op(conn))
            await self._commit(conn)
        except Exception:
            _rollback(conn)
            self.next_id = next_id
            for op, fut in batch:
                await self._commit_batch_single(conn, op, fut)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _commit_batch_single(
        self, conn: WriteConnection, op: Op, fut: asyncio.Future[Any]
    ) -> None:
        next_id = self.next_id
        conn.raw.execute("BEGIN IMMEDIATE")
        try:
            result = await op(conn)
            await self._commit(conn)
        except Exception as exc:
            _rollback(conn)
            self.next_id = next_id
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(result)

    # ----------------------------------------------------------------- reads

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())


def split_statements(script: str) -> list[str]:
    """The statements of a migration script, split on ``;`` except inside a statement that
    is not complete yet (a trigger's ``BEGIN ... END`` body)."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                statements.append(pending)
            pending = ""
    if pending.strip(" \t\n;"):
        statements.append(pending)
    return statements


def _rollback(conn: WriteConnection) -> None:
    if conn.raw.in_transaction:
        conn.raw.execute("ROLLBACK")
