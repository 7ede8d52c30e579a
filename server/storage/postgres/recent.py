"""The sender's recent messages on PostgreSQL (moderation's spam behaviour): read for every
message, cheaply, and never from a stale copy.

Moderating a message reads its sender's newest messages (``recent_of_sender``: repeats and
bursts). Several processes may store and change the same sender's messages, so *which*
messages those are is asked of the database on every call, never answered from memory. What
is saved is the rest of the cost, which the profile showed to be most of a send's CPU here:

- **One query for all the calls waiting.** The calls made while a query is out wait for the
  next one, which answers them all (one ``LATERAL`` index scan per sender): one round trip
  and one statement per batch, not per message. A call never joins a query already sent, so
  its answer holds everything committed before the call was made, as a query of its own would.
- **Its own connection, statements planned once.** Both queries run on the connection the
  database keeps for this read (``Database.fetch_hot``): no pool checkout per query, and
  generic plans (the windows query was planned at every call on a pooled connection; its
  plan does not depend on the values).
- **Ids and row versions only.** The query returns each window's ids and row versions
  (``xmin`` and ``ctid``: every insert and update of a row makes a tuple with a new pair).
- **Opened rows kept by version.** A row this process inserted itself, or read before, is
  kept opened (decrypted) under its id and version; only rows missing or changed since are
  read and opened, in one more query for the whole batch. A changed row has a new version,
  so a kept copy is never served after the row changed. ``forget`` drops kept rows whose
  content was deleted (erasure, retention, a deleted message), as the ``Sealer`` cache does.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from server.models import Message
from server.storage.postgres.writer import Database
from server.storage.sealing import MESSAGE_COLUMNS, Sealer

#: A row version: ``xmin`` (the transaction that wrote the tuple) and ``ctid`` (where it is).
#: An update always writes a new tuple at a new place, so two versions of a row never share
#: both, even when one transaction inserts and then updates the row.
VERSION = "m.xmin::text || m.ctid::text"

#: Each distinct (sender, since, limit) waiting: its window's ids and versions, oldest first.
_WINDOWS = f"""
SELECT q.i, w.ids, w.versions
FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS q(sender, since, lim, i)
CROSS JOIN LATERAL (
    SELECT array_agg(r.id ORDER BY r.id) AS ids, array_agg(r.v ORDER BY r.id) AS versions
    FROM (
        SELECT m.id, {VERSION} AS v FROM messages AS m
        WHERE m.sender = q.sender AND m.sent_at >= q.since
        ORDER BY m.id DESC LIMIT q.lim
    ) AS r
) AS w
"""

_ROWS = f"SELECT {MESSAGE_COLUMNS}, {VERSION} AS v FROM messages AS m WHERE id = ANY($1::bigint[])"

Key = tuple[str, int, int]  # (sender, since, limit)


class SenderRecent:
    """``recent_of_sender`` for the PostgreSQL chat store (see the module docstring).

    ``size``: how many opened rows to keep (oldest kept first out).
    """

    def __init__(self, db: Database, sealer: Sealer, *, size: int = 20_000) -> None:
        self._db = db
        self._sealer = sealer
        self._size = size
        self._rows: OrderedDict[int, tuple[str, Message]] = OrderedDict()
        self._waiting: dict[Key, list[asyncio.Future[list[Message]]]] = {}
        self._runner: asyncio.Task[None] | None = None
        #: Counters for tests and the bench: queries, calls answered, rows read and opened.
        self.queries = 0
        self.calls = 0
        self.rows_read = 0

    # ----------------------------------------------------------------- the kept rows

    def remember(self, message: Message, version: str) -> None:
        """A row this process just committed (``version`` as the insert returned it)."""
        self._keep(message, version)

    def forget(self, ids: Iterable[int] | None = None) -> None:
        """Drop the kept rows of ``ids`` (every one for None): their content is gone."""
        if ids is None:
            self._rows.clear()
            return
        for message_id in ids:
            self._rows.pop(message_id, None)

    def holds(self, message_id: int) -> bool:
        """Whether an opened copy of the row is kept (tests: erased content is not)."""
        return message_id in self._rows

    def _keep(self, message: Message, version: str) -> None:
        rows = self._rows
        if rows.pop(message.id, None) is None and len(rows) >= self._size:
            rows.popitem(last=False)
        rows[message.id] = (version, message)

    # ----------------------------------------------------------------- the reads

    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]:
        """The sender's newest ``limit`` messages sent at or after ``since``, oldest first."""
        fut: asyncio.Future[list[Message]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((sender, since, limit), []).append(fut)
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="postgres-sender-recent")
        return await fut

    async def _run(self) -> None:
        """Answer the waiting calls, one batch per query, until none wait."""
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, {}
                try:
                    answers = await self._answer(list(batch))
                except Exception as exc:  # StorageUnavailable, a database error: to each
                    for futures in batch.values():
                        for fut in futures:
                            if not fut.done():
                                fut.set_exception(exc)
                    continue
                except BaseException:  # cancelled (shutting down): so are the waiting calls
                    for futures in [*batch.values(), *self._waiting.values()]:
                        for fut in futures:
                            fut.cancel()
                    raise
                for key, futures in batch.items():
                    for fut in futures:
                        if not fut.done():
                            fut.set_result(list(answers[key]))
                self.calls += sum(len(f) for f in batch.values())
        finally:
            self._runner = None

    async def _answer(self, keys: Sequence[Key]) -> dict[Key, list[Message]]:
        self.queries += 1
        windows = await self._db.fetch_hot(
            _WINDOWS, [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]
        )
        rows = self._rows
        got: dict[int, Message] = {}
        wanted: list[int] = []
        found: list[tuple[Key, Sequence[int]]] = []
        for row in windows:
            ids: Sequence[int] = row["ids"] or ()
            found.append((keys[row["i"] - 1], ids))
            for message_id, version in zip(ids, row["versions"] or (), strict=True):
                kept = rows.get(message_id)
                if kept is not None and kept[0] == version:
                    got[message_id] = kept[1]
                else:
                    wanted.append(message_id)
        if wanted:
            read = await self._read(wanted)
            for message_id in wanted:
                if message_id in read:
                    got[message_id] = read[message_id]
                else:  # deleted between the two queries: left out, and not kept
                    rows.pop(message_id, None)
        # A row changed between the two queries is served as the second one read it.
        return {key: [got[i] for i in ids if i in got] for key, ids in found}

    async def _read(self, ids: list[int]) -> dict[int, Message]:
        """Read, open and keep the rows of ``ids`` (those still stored)."""
        rows: list[Any] = await self._db.fetch_hot(_ROWS, ids)
        self.rows_read += len(rows)
        read: dict[int, Message] = {}
        for row in rows:
            message = self._sealer.row_to_message(row)
            self._keep(message, row["v"])
            read[message.id] = message
        return read
