"""The PostgreSQL database: one writer connection with group commit, a pool of readers.

As in SQLite (``server/storage/sqlite/writer.py``): every write is a small coroutine (an
*op*) queued to the writer task, which takes all the ops waiting, runs them in one
transaction and commits once, then resolves each op's future: a caller hears back only after
its row is committed, and concurrent senders share one commit (one WAL flush). Ops queued
while the batch's ops run (while the first waits for the id lock below) join the batch
before its commit. If any op in a
batch fails, the batch is rolled back and each op is re-run in a transaction of its own, so
one bad op never costs the others.

Message ids: the id is in the sealed body's associated data, so it must be known before the
insert. The first message of a batch takes the id lock (``MESSAGE_ID_LOCK``, a session
advisory lock) and one ``nextval`` of ``messages_id_seq`` in one round trip; the batch's
further messages count on from it in memory, and the statement that inserts them also sets
the sequence to the next unused id (ids taken by retries of a stored ``(sender, muid)`` at the
end of the batch given back; ids of a rolled-back batch are skipped). Ids increase in storage
order, in this process (one writer) and across processes sharing the database: a reader that
has seen id ``n`` committed never later finds a smaller new id. Two locks keep that:

- the id lock is held from the ``nextval`` until the batch's rows are inserted and the
  sequence moved past them, so batches take their ids one after another;
- before the id lock is released, the batch's transaction takes the commit gate
  (``COMMIT_GATE``, a transaction lock: PostgreSQL releases it only once the commit is
  visible), and every batch that took ids takes the gate before it commits, so the next batch
  cannot commit before this one is visible.

Round trips: a batch that only inserts messages (the sends) is two: the id lock with the first
id, then one statement that takes the gate, inserts, moves the sequence and releases the id
lock, run as a transaction of its own (an implicit one: PostgreSQL commits it before it
answers, so an acknowledgement still means committed). The next batch, here or in another
process, takes its ids while this one's commit is flushed. A batch with any other statement
runs in ``BEGIN`` ... ``COMMIT``, the gate and the release riding with the ``COMMIT``. A
process of an earlier version holds the id lock until its commit (a transaction lock) but
takes no gate: while both versions run (a rolling upgrade) its batch could, in a narrow race,
commit before the batch of a new process that released the lock just before committing.

Staged rows: an op may *stage* a row (``WriteTx.stage``) instead of running its statement;
the rows staged with one flush function are written by one statement before the
transaction's next statement or its commit, whichever comes first. A batch's new messages are
thus one ``INSERT`` (one round trip, one statement for PostgreSQL to run), not one each; the
op learns its row's outcome when its result is handed back, after the commit as ever. A flush
function runs exactly one statement: when nothing else ran, that statement is the batch's
whole transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError("PostgreSQL support needs asyncpg: pip install 'parley[postgres]'") from exc

from server.errors import StorageUnavailable
from server.storage.postgres.migrations import MIGRATIONS

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S")

#: Advisory lock key serialising the batches that take message ids (a session lock here; a
#: process of an earlier version takes it per transaction, which excludes the same way).
MESSAGE_ID_LOCK = 0x7061726C6579_01  # "parley" 01
#: pg_advisory_xact_lock key a batch that took ids holds from before it releases the id lock
#: until its commit is visible (see the module docstring).
COMMIT_GATE = 0x7061726C6579_03
#: pg_advisory_lock key held while a process migrates the schema.
MIGRATION_LOCK = 0x7061726C6579_02
#: Seconds any one statement may take before it fails (asyncpg ``command_timeout``).
COMMAND_TIMEOUT = 30.0


async def connect(url: str) -> Any:
    """One connection (an ``asyncpg.Connection``) with the timeouts every caller uses."""
    return await asyncpg.connect(url, command_timeout=COMMAND_TIMEOUT, timeout=10)


#: What a lost or refused connection raises (a stopped server, a failover, a network cut).
UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def rowcount(status: str) -> int:
    """The row count of a command status (``INSERT 0 1``, ``UPDATE 3``, ``DELETE 0``)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


#: Take the id lock, then the first id of the batch (the fenced subquery runs first).
_LOCK_AND_ID = (
    "SELECT nextval('messages_id_seq') FROM (SELECT pg_advisory_lock($1) OFFSET 0) AS locked"
)
#: The same should this connection still hold the lock (a failed transaction releases it, so
#: only a defence): released first, so the count of holds stays one.
_RELOCK_AND_ID = (
    "SELECT nextval('messages_id_seq') FROM (SELECT pg_advisory_lock($1)"
    " FROM (SELECT pg_advisory_unlock($1) OFFSET 0) AS released OFFSET 0) AS locked"
)
#: Release the id lock (a simple query: it can ride with another one).
_UNLOCK = f"SELECT pg_advisory_unlock({MESSAGE_ID_LOCK})"
#: For a flush function's statement that is a whole transaction: its first step, then its
#: last, once the rows are in and the sequence moved (``WriteTx.single``).
TAKE_GATE = f"pg_advisory_xact_lock({COMMIT_GATE})"
RELEASE_IDS = f"pg_advisory_unlock({MESSAGE_ID_LOCK})"


class IdLock:
    """Whether the writer's connection holds the id lock (a session lock: it outlives the
    transaction that took it, and a failed one leaves it held: released after the batch)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = False


class WriteTx:
    """The writer's connection inside one transaction, as an op sees it.

    ``BEGIN`` is sent before the first statement an op runs, not before the ops: a batch whose
    ops only take ids and stage rows is one statement at its commit (see the module
    docstring)."""

    __slots__ = (
        "_begun",
        "_conn",
        "_first_id",
        "_lock",
        "_next_id",
        "_seq_at",
        "_single",
        "_staged",
        "round_trips",
    )

    def __init__(self, conn: Any, lock: IdLock) -> None:
        self._conn = conn
        self._lock = lock
        self._begun = False
        #: The one statement that is the whole transaction: None (not running), False (yet
        #: to run), True (ran).
        self._single: bool | None = None
        self._first_id: int | None = None
        self._next_id = 0
        self._seq_at = 0  # the sequence's next value, as far as this transaction set it
        self._staged: dict[Flush[Any], list[Any]] = {}
        self.round_trips = 0

    async def _before(self) -> None:
        """Before a statement: the transaction begun and the staged rows written first."""
        if self._single is not None:
            if self._single:
                raise RuntimeError("a flush function runs exactly one statement")
            self._single = True
            self.round_trips += 1
            return
        if not self._begun:
            await self._begin()
        if self._staged:
            await self.flush()
        self.round_trips += 1

    async def _begin(self) -> None:
        self._begun = True
        self.round_trips += 1
        await self._conn.execute("BEGIN")

    @property
    def begun(self) -> bool:
        """Whether ``BEGIN`` was sent (an op ran a statement of its own)."""
        return self._begun

    @property
    def single(self) -> bool:
        """Whether the statement a flush function runs now is the whole transaction: then it
        takes the gate first (``TAKE_GATE``) and releases the id lock last (``RELEASE_IDS``)."""
        return self._single is not None

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; the number of rows it touched."""
        await self._before()
        return rowcount(await self._conn.execute(sql, *args))

    async def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        await self._before()
        await self._conn.executemany(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        await self._before()
        return await self._conn.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        await self._before()
        return list(await self._conn.fetch(sql, *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        await self._before()
        return await self._conn.fetchval(sql, *args)

    def stage(self, flush: Flush[S], row: S) -> S:
        """Stage ``row`` for ``flush``, which writes every row staged with it in this
        transaction at once (see the module docstring); ``row`` back, for the op's result.
        ``flush`` is a module-level function: its identity groups the rows."""
        self._staged.setdefault(flush, []).append(row)
        return row

    async def flush(self) -> None:
        """Write the staged rows now (before another statement, and before the commit)."""
        while self._staged:
            staged, self._staged = self._staged, {}
            for flush, rows in staged.items():
                await flush(self, rows)

    async def message_id(self) -> int:
        """The id of the next message this transaction inserts (see the module docstring)."""
        if self._first_id is None:
            lock = self._lock
            sql = _RELOCK_AND_ID if lock.held else _LOCK_AND_ID
            # Held from now on, as far as releasing it goes: also if this statement fails
            # after PostgreSQL granted it (a timeout); releasing a lock not held is harmless.
            lock.held = True
            self.round_trips += 1
            first = int(await self._conn.fetchval(sql, MESSAGE_ID_LOCK))
            self._first_id = self._next_id = first
            self._seq_at = first + 1
        message_id = self._next_id
        self._next_id += 1
        return message_id

    def ids_from(self, next_id: int) -> None:
        """The statement that inserted the staged messages set the sequence to ``next_id``
        (the ids from it on, taken by retries of stored messages, given back)."""
        self._next_id = self._seq_at = next_id

    @property
    def _catch_up(self) -> str | None:
        """The ``setval`` that moves the sequence to the next id not used, if it is not there."""
        if self._first_id is None or self._next_id == self._seq_at:
            return None
        return f"SELECT setval('messages_id_seq', {int(self._next_id)}, false)"

    async def commit(self) -> None:
        """Write the staged rows, then commit: with nothing run yet and one kind of staged
        rows, their statement is the transaction (PostgreSQL commits it before answering);
        else ``COMMIT``, with the sequence's catch-up and the lock's release in its round trip."""
        if not self._begun and len(self._staged) == 1:
            self._single = False
            try:
                await self.flush()
            finally:
                self._single = None
            if self._first_id is not None:
                self._lock.held = False  # released by the statement, which committed
        if not self._begun:
            if (catch_up := self._catch_up) is not None:
                self.round_trips += 1
                await self._conn.execute(catch_up)
            return
        if self._staged:
            await self.flush()
        sql = "COMMIT"
        if (catch_up := self._catch_up) is not None:
            sql = f"{catch_up}; {sql}"  # a simple query: all in one round trip
        release = self._lock.held
        if release:
            sql = f"SELECT {TAKE_GATE}; {sql}; {_UNLOCK}"
        self.round_trips += 1
        await self._conn.execute(sql)
        if release:
            self._lock.held = False


Op = Callable[[WriteTx], Awaitable[Any]]
#: Writes the rows staged with it (``WriteTx.stage``) in one statement.
Flush = Callable[[WriteTx, list[S]], Awaitable[None]]


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
        self._writer = None
        self._pool = None

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
            await conn.execute(_UNLOCK)
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
