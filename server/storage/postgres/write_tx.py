"""The PostgreSQL writer's transaction (``WriteTx``), as an op sees it: message ids under the
id lock and the commit gate, round trips, staged rows (the writer task that runs it:
``server/storage/postgres/writer.py``).

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

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

S = TypeVar("S")

#: Advisory lock key serialising the batches that take message ids (a session lock here; a
#: process of an earlier version takes it per transaction, which excludes the same way).
MESSAGE_ID_LOCK = 0x7061726C6579_01  # "parley" 01
#: pg_advisory_xact_lock key a batch that took ids holds from before it releases the id lock
#: until its commit is visible (see the module docstring).
COMMIT_GATE = 0x7061726C6579_03


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
UNLOCK = f"SELECT pg_advisory_unlock({MESSAGE_ID_LOCK})"
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
            sql = f"SELECT {TAKE_GATE}; {sql}; {UNLOCK}"
        self.round_trips += 1
        await self._conn.execute(sql)
        if release:
            self._lock.held = False


Op = Callable[[WriteTx], Awaitable[Any]]
#: Writes the rows staged with it (``WriteTx.stage``) in one statement.
Flush = Callable[[WriteTx, list[S]], Awaitable[None]]
