"""The sender's recent messages on PostgreSQL (``server/storage/postgres/recent.py``): what
spam behaviour reads for every moderated send. Two stores on one database stand for two
processes: each answers exactly what the database holds at the call (inserts, edits, verdicts,
deletions and erasure by either), while the calls waiting together share one query and rows a
store inserted or read before are not read again."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.crypto import KeyRing
from server.models import Moderation, Status
from server.storage.postgres import PostgresStorage
from server.storage.sealing import MESSAGE_COLUMNS, Sealer
from server.storage.types import Audit
from tests.server.test_postgres_store import new_message, ring, url

__all__ = ["ring", "url"]  # fixtures

NOW = int(time.time())


@pytest.fixture
async def two(url: str, ring: KeyRing) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    stores = (PostgresStorage(url, ring), PostgresStorage(url, ring))
    for s in stores:
        await s.open()
    try:
        yield stores
    finally:
        for s in stores:
            await s.close()


async def truth(url: str, ring: KeyRing, sender: str, since: int, limit: int) -> list[object]:
    """The answer read straight from the database, opened by a sealer that keeps nothing."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = $1 AND sent_at >= $2"
            " ORDER BY id DESC LIMIT $3",
            sender,
            since,
            limit,
        )
    finally:
        await conn.close()
    return [Sealer(ring).row_to_message(r) for r in reversed(rows)]


async def test_each_process_answers_what_the_database_holds(
    two: tuple[PostgresStorage, PostgresStorage], url: str, ring: KeyRing
) -> None:
    """Random inserts, edits, verdicts and deletions through either store; after each step
    both stores' answers equal the database's, for every sender and window."""
    rng = random.Random(14)
    senders = ["s1", "s2", "s3"]
    stored = []
    for step in range(120):
        store = rng.choice(two)
        action = rng.random()
        if action < 0.55 or not stored:
            new = new_message(step, rng.choice(senders), "r")
            message, _ = await store.chat.insert_message(new)
            stored.append(message)
        else:
            current = await store.chat.get_message(rng.choice(stored).id)
            assert current is not None
            if action < 0.7:
                await store.chat.update_content(current, status=Status.APPROVED, at=NOW + step)
            elif action < 0.85:
                await store.chat.set_status(
                    current,
                    rng.choice([Status.APPROVED, Status.DISAPPROVED]),
                    Moderation("r", "R", f"reason {step}"),
                    NOW + step,
                    None,
                )
            else:
                await store.chat.mark_deleted(current, NOW + step)
        for sender in senders:
            for since, limit in ((0, 20), (NOW - 600, 5)):
                want = await truth(url, ring, sender, since, limit)
                answers = await asyncio.gather(
                    *(s.chat.recent_of_sender(sender, since=since, limit=limit) for s in two)
                )
                assert answers[0] == want and answers[1] == want, (step, sender)


async def test_an_edit_through_the_other_process_is_seen(
    two: tuple[PostgresStorage, PostgresStorage],
) -> None:
    a, b = two
    first, _ = await a.chat.insert_message(new_message(1, "s"))
    assert [m.text for m in await a.chat.recent_of_sender("s", since=0, limit=20)] == ["hello 1"]
    edited = await b.chat.update_content(
        dataclasses.replace(first, text="buy cheap watches"),
        status=Status.APPROVED,
        at=NOW,
    )
    assert edited.rev == 1
    seen = await a.chat.recent_of_sender("s", since=0, limit=20)
    assert [(m.text, m.rev) for m in seen] == [("buy cheap watches", 1)]


async def test_waiting_calls_share_a_query_and_own_rows_are_not_read_again(
    two: tuple[PostgresStorage, PostgresStorage],
) -> None:
    a, b = two
    recent = a.chat._sender_recent
    await asyncio.gather(*(a.chat.insert_message(new_message(i, f"s{i % 10}")) for i in range(60)))
    queries, rows_read = recent.queries, recent.rows_read
    answers = await asyncio.gather(
        *(a.chat.recent_of_sender(f"s{i % 10}", since=0, limit=20) for i in range(50))
    )
    assert [len(x) for x in answers] == [6] * 50
    assert recent.queries - queries <= 2  # 50 calls waiting together: one query (or two)
    assert recent.rows_read == rows_read  # all 60 rows were this store's own inserts
    # A row the other process inserted is read once, then kept.
    other, _ = await b.chat.insert_message(new_message(99, "s3"))
    got = await a.chat.recent_of_sender("s3", since=0, limit=20)
    assert got[-1] == other and recent.rows_read == rows_read + 1
    await a.chat.recent_of_sender("s3", since=0, limit=20)
    assert recent.rows_read == rows_read + 1


async def test_deleted_and_erased_content_is_not_kept(
    two: tuple[PostgresStorage, PostgresStorage],
) -> None:
    a, _ = two
    recent = a.chat._sender_recent
    gone, _ = await a.chat.insert_message(new_message(1, "s"))
    kept, _ = await a.chat.insert_message(new_message(2, "s"))
    assert recent.holds(gone.id) and recent.holds(kept.id)
    await a.chat.mark_deleted(gone, NOW)
    assert not recent.holds(gone.id) and recent.holds(kept.id)
    await a.chat.delete_user("s", NOW, erase=True, audit=Audit("api", "user.delete", "s", {}))
    assert not recent.holds(kept.id)
    assert await a.chat.recent_of_sender("s", since=0, limit=20) == []


async def test_reads_are_planned_once_and_survive_a_lost_connection(
    two: tuple[PostgresStorage, PostgresStorage], url: str
) -> None:
    """The sender's recent messages are read for every moderated send: their statements are
    planned once per session (a plan at every read cost PostgreSQL more CPU than running
    them), on the connection kept for them, which is replaced when it is lost."""
    a, _ = two
    for i in range(12):
        await a.chat.insert_message(new_message(i, f"s{i % 3}"))
        assert len(await a.chat.recent_of_sender(f"s{i % 3}", since=0, limit=20)) == i // 3 + 1
    plans = await a.db.fetch_hot(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
    )
    windows = [p for p in plans if "unnest" in p["statement"]]
    assert len(windows) == 1
    assert windows[0]["custom_plans"] == 0 and windows[0]["generic_plans"] >= 12
    # The connection is lost (a failover, an administrator): the next reads reconnect.
    (pid,) = await a.db.fetch_hot("SELECT pg_backend_pid() AS pid")
    admin = await asyncpg.connect(url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid["pid"])
    finally:
        await admin.close()
    for _ in range(50):  # until the client has seen the connection close
        if a.db._hot is None or a.db._hot.is_closed():
            break
        await asyncio.sleep(0.02)
    got = await a.chat.recent_of_sender("s1", since=0, limit=20)
    assert [m.text for m in got] == ["hello 1", "hello 4", "hello 7", "hello 10"]
