"""The PostgreSQL database: one writer connection with group commit, a pool of readers, and
one reader connection kept for the hot read of every moderated send (``fetch_hot``).

As in SQLite (``server/storage/sqlite/writer.py``): every write is a small coroutine (an
*op*) queued to the writer task, which takes all the ops waiting, runs them in one
transaction and commits once, then resolves each op's future: a caller hears back only after
its row is committed, and concurrent senders share one commit (one WAL flush). Ops queued
while the batch's ops run (while the first waits for the id lock below) join the batch
before its commit. If any op in a
batch fails, the batch is rolled back and each op is re-run in a transaction of its own, so
one bad op never costs the others.

The transaction each batch runs in, with the message ids, their locks and the staged rows, is
``server/storage/postgres/write_tx.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("PostgreSQL support needs asyncpg: pip install 'parley[postgres]'") from exc

from server.errors import StorageUnavailable
from server.storage.postgres.migrations import MIGRATIONS
from server.storage.postgres.write_tx import UNLOCK, IdLock, Op, WriteTx

log = logging.getLogger(__name__)

T = TypeVar("T")

#: pg_advisory_lock key held while a process migrates the schema.
MIGRATION_LOCK = 0x7061726C6579_02
#: Seconds any one statement may take before it fails (asyncpg ``command_timeout``).
COMMAND_TIMEOUT = 30.0


async def connect(url: str, settings: dict[str, str] | None = None) -> Any:
    """One connection (an ``asyncpg.Connection``) with the timeouts every caller uses;
    ``settings``: session settings (``server_settings``)."""
    return await asyncpg.connect(
        url, command_timeout=COMMAND_TIMEOUT, timeout=10, server_settings=settings
    )


#: The session settings of the ``fetch_hot`` connection: its statements are planned once per
#: session, not at every call. PostgreSQL's default (``auto``) keeps planning a statement whose
#: custom plans look cheaper than the generic one, and a query over ``unnest`` of its array
#: parameters always does (the arrays' lengths are known only to a custom plan): the sender's
#: recent messages were planned at every read, about 0.2 ms of PostgreSQL's CPU each, more
#: than running them. Their plans do not depend on the values (the sender is a lateral
#: reference, unknown to a custom plan too), so the generic plan is the same plan.
HOT_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


#: What a lost or refused connection raises (a stopped server, a failover, a network cut).
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


class Database:
    """The writer connection, the reader pool and the writer task.

    ``open()`` connects and migrates; ``close()`` drains the writer first. The writer
    reconnects by itself before its next batch when its connection was lost.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_max: int = 512,
        queue_size: int = 10_000,
        pool_size: int = 4,
    ) -> None:
        self._url = url
        self._batch_max = batch_max
        self._pool_size = pool_size
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue(
            queue_size
        )
        self._writer: Any = None  # asyncpg.Connection
        self._pool: Any = None  # asyncpg.Pool
        self._hot: Any = None  # asyncpg.Connection of ``fetch_hot``
        self._hot_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._lock = IdLock()
        self._stop = False
        #: Counters for tests and the bench: batches, ops, the writer's round trips.
        self.batches = 0
        self.ops = 0
        self.round_trips = 0

    # ----------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        self._writer = await connect(self._url)
        await migrate(self._writer)
        self._pool = await asyncpg.create_pool(
            self._url,
            min_size=1,
            max_size=self._pool_size,
            command_timeout=COMMAND_TIMEOUT,
            timeout=10,
            # The readers run single SELECTs (no session settings, locks, LISTEN or open
            # transactions): asyncpg's default reset on every release is a round trip that
            # undoes nothing (measured: 7% of a process's CPU under load).
            reset=_no_reset,
        )
        self._task = asyncio.create_task(self._run_writer(), name="postgres-writer")

    async def close(self) -> None:
        if self._task is not None:
            # Queued writes may already be promised to clients: the writer drains them first.
            await self._queue.put(None)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._writer is not None and not self._writer.is_closed():
            await self._writer.close(timeout=10)
        if self._pool is not None:
            await self._pool.close()
        async with self._hot_lock:
            if self._hot is not None and not self._hot.is_closed():
                await self._hot.close(timeout=10)
        self._writer = None
        self._pool = None
        self._hot = None

    # ----------------------------------------------------------------- the writer

    async def write(self, op: Callable[[WriteTx], Awaitable[T]]) -> T:
        """Run ``op`` inside a write transaction; return its result after the commit."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return await fut

    async def _run_writer(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            self._stop = False
            self._take(batch)
            try:
                await self._commit_batch(batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise
            except UNREACHABLE as exc:  # nothing committed: the callers may retry as they are
                log.warning("PostgreSQL unreachable; %d writes refused: %r", len(batch), exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(StorageUnavailable())
            except Exception:  # the database itself failed: fail the callers, keep serving
                log.exception("write batch failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("storage write failed"))
            if self._stop:
                return

    def _take(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> bool:
        """Add the writes waiting to ``batch`` (up to ``batch_max``); whether any were added."""
        added = False
        while not self._stop and len(batch) < self._batch_max and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._stop = True  # close(): this batch is the last
                break
            batch.append(item)
            added = True
        return added

    async def _connection(self) -> Any:
        if self._writer is None or self._writer.is_closed():
            log.warning("reconnecting the PostgreSQL writer")
            self._lock.held = False  # it went with the old connection
            self._writer = await connect(self._url)
        return self._writer

    async def _commit_batch(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        self.batches += 1
        conn = await self._connection()
        try:
            try:
                results = await self._transaction(conn, batch)
            except Exception:
                if conn.is_closed():
                    raise  # the connection is gone, not one op: fail the batch
                for op, fut in batch:
                    await self._commit_single(conn, op, fut)
                return
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self.ops += len(batch)
            await self._release_lock(conn)

    async def _transaction(
        self, conn: Any, batch: list[tuple[Op, asyncio.Future[Any]]], *, grow: bool = True
    ) -> list[Any]:
        """Run the batch's ops in one transaction and commit. Writes queued while the ops ran
        (while the first waited for the id lock, typically: another process's batch holds
        it) join a batch of sends before the commit, so they share it rather than wait for
        the next (``grow``; not for a write re-run alone)."""
        tx = WriteTx(conn, self._lock)
        results: list[Any] = []
        try:
            while True:
                for op, _ in batch[len(results) :]:
                    results.append(await op(tx))
                # Only while the ops ran no statement of their own: joining ops then only
                # stage rows (quick), so the first op's commit is not put off by theirs.
                if not grow or tx.begun or not self._take(batch):
                    break
            await tx.commit()
        except BaseException:  # roll back (a transaction that is one statement did itself)
            if not conn.is_closed() and conn.is_in_transaction():
                with contextlib.suppress(Exception):
                    await conn.execute("ROLLBACK")
            # Nothing of it was stored: the id lock goes before its callers hear.
            await self._release_lock(conn)
            raise
        finally:
            self.round_trips += tx.round_trips
        return results

    async def _release_lock(self, conn: Any) -> None:
        """Release the id lock if this connection may still hold it (a transaction that
        took ids failed; after every batch too, should anything have left it held)."""
        lock = self._lock
        if not lock.held:
            return
        if conn.is_closed():
            lock.held = False  # released with the session
            return
        try:
            self.round_trips += 1
            await conn.execute(UNLOCK)
        except Exception:  # never leave it held: a connection that cannot release it goes
            log.warning("could not release the message id lock; dropping the connection")
            conn.terminate()
        lock.held = False

    async def _commit_single(self, conn: Any, op: Op, fut: asyncio.Future[Any]) -> None:
        try:
            (result,) = await self._transaction(conn, [(op, fut)], grow=False)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(StorageUnavailable() if isinstance(exc, UNREACHABLE) else exc)
            return
        if not fut.done():
            fut.set_result(result)

    # ----------------------------------------------------------------- reads

    async def fetchone(self, sql: str, *args: Any) -> Any:
        """The first row of a read on a pooled connection, or None."""
        try:
            return await self._pool.fetchrow(sql, *args)
        except UNREACHABLE as exc:
            raise StorageUnavailable() from exc

    async def fetchall(self, sql: str, *args: Any) -> list[Any]:
        """The rows of a read on a pooled connection."""
        try:
            return list(await self._pool.fetch(sql, *args))
        except UNREACHABLE as exc:
            raise StorageUnavailable() from exc

    async def fetch_hot(self, sql: str, *args: Any) -> list[Any]:
        """The rows of a read on the connection kept for the reads of every moderated send
        (the sender's recent messages): no pool checkout and release around each, and its
        statements planned once (``HOT_SETTINGS``), for statements whose plan does not depend
        on their parameters. One read at a time; lost, it is replaced at the next read."""
        async with self._hot_lock:
            try:
                conn = self._hot
                if conn is None or conn.is_closed():
                    conn = self._hot = await connect(self._url, HOT_SETTINGS)
                return list(await conn.fetch(sql, *args))
            except UNREACHABLE as exc:
                raise StorageUnavailable() from exc

    async def maintenance(self, sql: str) -> None:
        """A statement that cannot run in a transaction (``VACUUM``), on a pooled connection."""
        await self._pool.execute(sql)


async def _no_reset(conn: Any) -> None:
    """A pooled reader's reset on release: nothing to undo (see ``Database.open``)."""


async def migrate(conn: Any) -> None:
    """Apply the migrations this database lacks, one transaction each; processes starting
    together take turns (a session advisory lock)."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS parley_schema (version INTEGER NOT NULL)")
        version = await conn.fetchval("SELECT max(version) FROM parley_schema")
        version = int(version or 0)
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO parley_schema (version) VALUES ($1)", number)
            log.info("applied PostgreSQL migration %d", number)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
