"""The PostgreSQL store (server/storage/postgres/) against a real PostgreSQL (tests/pg.py):
group commit, message ids in storage order across processes, a failing op retried alone,
sealing as on SQLite, the start-up key check, media rows, reconnecting the writer.

These run in every session, whichever backend the servers of the session use: PostgreSQL is
always installed where the suite runs (``.ci/run``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from server.crypto import KeyRing
from server.errors import StorageUnavailable
from server.models import Status, User
from server.storage.postgres import PostgresStorage, has_data, key_ids_in_use
from server.storage.postgres.write_tx import COMMIT_GATE, MESSAGE_ID_LOCK
from server.storage.sealing import Sealer
from server.storage.types import Audit, MediaRecord, NewMessage
from tests.conftest import ROOT
from tests.pg import cluster


@pytest.fixture
def url() -> str:
    """A fresh, empty database."""
    return cluster().database(f"unit-{uuid.uuid4().hex}")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture
async def store(url: str, ring: KeyRing) -> AsyncIterator[PostgresStorage]:
    storage = PostgresStorage(url, ring)
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


#: A message row as another process inserts it (the next id from the shared sequence).
THEIR_INSERT = (
    "INSERT INTO messages (id, muid, conversation_id, sender, receiver, receiver_type,"
    " category, type, kid, body, sent_at, updated_at, status, conv_key)"
    " VALUES (nextval('messages_id_seq'), 'x', 'c', 'p2', 'b', 'user', 'message',"
    " 'text', 'k', '\\x00', 1, 1, 'approved', 'u:b:p2') RETURNING id"
)


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[Any]:
    """A plain asyncpg connection to ``url``, closed at the end."""
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def other(url: str) -> AsyncIterator[Any]:
    """A connection standing for another Parley process on the same database."""
    async with connected(url) as conn:
        yield conn


@pytest.fixture
async def reader(url: str) -> AsyncIterator[Any]:
    """A connection that sees only what is committed."""
    async with connected(url) as conn:
        yield conn


def new_message(i: int, sender: str = "a", receiver: str = "b") -> NewMessage:
    return NewMessage(
        muid=f"{sender}-{i}",
        conversation_id=f"{sender}_user_{receiver}",
        sender=sender,
        receiver=receiver,
        receiver_type="user",
        category="message",
        type="text",
        text=f"hello {i}",
        data=None,
        metadata={"i": i},
        tags=("t",),
        parent_id=None,
        attachment=None,
        status=Status.UNMODERATED,
        at=int(time.time()),
    )


async def test_concurrent_inserts_share_commits_and_take_increasing_ids(
    store: PostgresStorage,
) -> None:
    results = await asyncio.gather(*(store.chat.insert_message(new_message(i)) for i in range(200)))
    ids = [m.id for m, created in results if created]
    assert sorted(ids) == list(range(1, 201))
    assert store.db.ops == 200 and store.db.batches < 50  # group commit
    # A retry (same sender and muid) is idempotent and names the stored message.
    again, created = await store.chat.insert_message(new_message(7))
    assert not created and again.id == results[7][0].id and again.text == "hello 7"
    # Ids counted on in memory moved the sequence: the next batch continues above them.
    (after, _), (late, _) = await asyncio.gather(
        store.chat.insert_message(new_message(500)), store.chat.insert_message(new_message(501))
    )
    assert sorted([after.id, late.id]) == [201, 202]


async def test_ids_increase_in_storage_order_across_processes(url: str, ring: KeyRing) -> None:
    """Two stores on one database (two processes): a reader never sees a new id below one it
    has already seen committed."""
    stores = [PostgresStorage(url, ring), PostgresStorage(url, ring)]
    for s in stores:
        await s.open()
    reader = await asyncpg.connect(url)
    violations: list[tuple[int, int]] = []
    done = asyncio.Event()

    async def watch() -> None:
        seen: set[int] = set()
        while not done.is_set():
            now = {r["id"] for r in await reader.fetch("SELECT id FROM messages")}
            fresh = now - seen
            if seen and fresh and min(fresh) < max(seen):
                violations.append((min(fresh), max(seen)))
            seen = now

    async def send(store: PostgresStorage, sender: str) -> None:
        # Waves of sends (a batch each, the id lock released after it), then a stream (a
        # batch waits when one commits: the lock is released by the next lock statement).
        for wave in range(10):
            await asyncio.gather(
                *(store.chat.insert_message(new_message(wave * 10 + i, sender)) for i in range(10))
            )

        async def stream(k: int) -> None:
            for i in range(10):
                await store.chat.insert_message(new_message(1000 + k * 100 + i, sender))

        await asyncio.gather(*(stream(k) for k in range(8)))

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.gather(send(stores[0], "p1"), send(stores[1], "p2"))
    finally:
        done.set()
        await watcher
        await reader.close()
        for s in stores:
            await s.close()
    assert not violations


async def test_the_id_lock_is_held_until_the_commit_and_released_after(
    store: PostgresStorage, other: Any, reader: Any
) -> None:
    """A send waits while another process holds the message id lock (here one that takes it
    per transaction, as an earlier version did: a rolling upgrade), is stored with an id above
    that process's, and is acknowledged only once committed; after each batch the lock is
    free again, also after a batch that failed."""
    await store.chat.insert_message(new_message(1))
    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MESSAGE_ID_LOCK)
    await other.execute("SELECT pg_advisory_unlock($1)", MESSAGE_ID_LOCK)

    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT pg_advisory_xact_lock($1)", MESSAGE_ID_LOCK)
    send = asyncio.create_task(store.chat.insert_message(new_message(2)))
    await asyncio.sleep(0.3)
    assert not send.done()
    theirs = await other.fetchval(THEIR_INSERT)
    await tx.commit()
    ours, created = await send
    assert created and ours.id > theirs
    # Acknowledged: committed, so another connection reads it at once.
    assert await reader.fetchval("SELECT count(*) FROM messages WHERE id = $1", ours.id)
    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MESSAGE_ID_LOCK)
    await other.execute("SELECT pg_advisory_unlock($1)", MESSAGE_ID_LOCK)

    # A batch whose INSERT fails (PostgreSQL refuses a NUL in a text column): the
    # others are stored one by one, the bad one fails alone, and the lock is free.
    bad = dataclasses.replace(new_message(13), muid="bad\x00muid")
    outcomes = await asyncio.gather(
        *(store.chat.insert_message(new_message(i)) for i in range(10, 20)),
        store.chat.insert_message(bad),
        return_exceptions=True,
    )
    assert [isinstance(o, BaseException) for o in outcomes] == [False] * 10 + [True]
    stored = [o[0].id for o in outcomes[:10] if isinstance(o, tuple)]
    assert stored == sorted(stored) and stored[0] > ours.id
    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MESSAGE_ID_LOCK)
    await other.execute("SELECT pg_advisory_unlock($1)", MESSAGE_ID_LOCK)


async def test_a_send_commits_only_after_the_batch_before_it_is_visible(
    store: PostgresStorage, other: Any, reader: Any
) -> None:
    """Another process's batch took its id, inserted and released the id lock, and its
    commit is not visible yet: a send that takes the next id is not stored, nor
    acknowledged, before that commit is (the commit gate); then both are, in id order."""
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT pg_advisory_lock($1)", MESSAGE_ID_LOCK)
    theirs = await other.fetchval(THEIR_INSERT)
    await other.execute("SELECT pg_advisory_xact_lock($1)", COMMIT_GATE)
    await other.execute("SELECT pg_advisory_unlock($1)", MESSAGE_ID_LOCK)
    send = asyncio.create_task(store.chat.insert_message(new_message(1)))
    await asyncio.sleep(0.3)
    assert not send.done()
    assert await reader.fetchval("SELECT count(*) FROM messages") == 0
    await tx.commit()
    ours, created = await send
    assert created and ours.id > theirs
    assert [r["id"] for r in await reader.fetch("SELECT id FROM messages ORDER BY id")] == [
        theirs,
        ours.id,
    ]


async def test_sends_queued_while_a_batch_waits_for_the_id_lock_join_its_commit(
    store: PostgresStorage, other: Any
) -> None:
    """While another process's batch holds the id lock, the sends queued behind this
    process's first one join its batch: one commit for all, not one more batch after."""
    await other.execute("SELECT pg_advisory_lock($1)", MESSAGE_ID_LOCK)
    before = store.db.batches
    first = asyncio.create_task(store.chat.insert_message(new_message(0)))
    await asyncio.sleep(0.2)  # the batch of one is waiting for the lock
    rest = [asyncio.create_task(store.chat.insert_message(new_message(i))) for i in range(1, 21)]
    await asyncio.sleep(0.1)
    await other.execute("SELECT pg_advisory_unlock($1)", MESSAGE_ID_LOCK)
    stored = [(await t)[0] for t in (first, *rest)]
    assert store.db.batches - before == 1
    assert [m.id for m in stored] == sorted(m.id for m in stored)


async def test_a_batch_of_sends_is_two_round_trips(store: PostgresStorage) -> None:
    """The writer's round trips for a batch of sends: the id lock with the first id, then
    the INSERT as its own transaction (which releases the lock); a batch with another write
    in it runs in BEGIN ... COMMIT."""
    db = store.db
    for k in range(2):
        before = (db.batches, db.round_trips)
        await asyncio.gather(
            *(store.chat.insert_message(new_message(i + 100 * k)) for i in range(50))
        )
        assert (db.batches - before[0], db.round_trips - before[1]) == (1, 2)
    before = (db.batches, db.round_trips)
    await asyncio.gather(
        store.chat.insert_message(new_message(100)), store.chat.add_receipt(1, "b", "read", 5)
    )
    # The lock with the id, BEGIN, the INSERT, the receipt, COMMIT with the release.
    assert (db.batches - before[0], db.round_trips - before[1]) == (1, 5)


async def test_a_failing_op_is_retried_alone(store: PostgresStorage) -> None:
    rule = {"id": "dup", "name": "d"}
    outcomes = await asyncio.gather(
        store.moderation.put_rule(rule, actor="t", at=1, create=True),
        *(store.chat.insert_message(new_message(i)) for i in range(20)),
        store.moderation.put_rule(rule, actor="t", at=2, create=True),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failed) == 1 and isinstance(failed[0], KeyError)
    assert len(await store.chat.history("u:a:b", before=None, limit=100, viewer=None)) == 20
    assert [r["revision"] for r in await store.moderation.rule_revisions("dup")] == [1]


async def test_rows_are_sealed_as_on_sqlite(
    store: PostgresStorage, url: str, ring: KeyRing
) -> None:
    message, _ = await store.chat.insert_message(new_message(1))
    async with connected(url) as conn:
        row = await conn.fetchrow("SELECT * FROM messages WHERE id = $1", message.id)
    assert b"hello" not in row["body"] and row["kid"] == ring.current
    # The associated data is the one SQLite uses: message id and conversation id.
    aad = f"parley:message:{message.id}:{message.conversation_id}".encode()
    content = json.loads(ring.open(row["kid"], row["body"], aad))
    assert (content["text"], content["metadata"], content["tags"]) == ("hello 1", {"i": 1}, ["t"])
    with pytest.raises(Exception):  # noqa: B017 - whichever error the cipher raises
        ring.open(row["kid"], row["body"], f"parley:message:{message.id + 1}:x".encode())
    assert Sealer(ring).row_to_message(row) == message


async def test_the_start_up_key_check_sees_every_sealed_table(url: str, ring: KeyRing) -> None:
    assert (key_ids_in_use(url), has_data(url)) == (frozenset(), False)
    store = PostgresStorage(url, ring)
    await store.open()
    try:
        assert (key_ids_in_use(url), has_data(url)) == (frozenset(), True)
        await store.chat.insert_message(new_message(1))
        await store.moderation.add_report(1, "b", "spam", "", 1)
        assert key_ids_in_use(url) == {ring.current}
    finally:
        await store.close()
    database = url.rsplit("/", 1)[1]
    cluster().psql("UPDATE reports SET kid = 'kreports'", database)
    cluster().psql(
        "INSERT INTO webhook_deliveries (event_id, event, hook_id, url, kid, body, status,"
        " next_at, created_at, updated_at) VALUES ('e', 'x', 'h', 'u', 'kwebhooks', '\\x00',"
        " 'failed', 0, 0, 0)",
        database,
    )
    assert key_ids_in_use(url) == {ring.current, "kreports", "kwebhooks"}


async def test_users_and_audit_rows(store: PostgresStorage) -> None:
    user = User(uid="u1", name="U", role="user", tags=("x",), metadata={"k": 1}, created_at=5,
                updated_at=5, banned=False, deleted_at=0, account="acc")  # fmt: skip
    await store.chat.create_user(user, Audit("api", "user.create", "u1", {}))
    assert await store.chat.get_user("u1") == user
    await store.chat.insert_message(new_message(1, "u1", "u2"))
    await store.chat.delete_user("u1", 9, erase=True, audit=Audit("api", "user.delete", "u1", {}))
    assert await store.chat.get_user("u1") is None
    assert await store.chat.messages_of_sender("u1") == []
    assert [e.action for e in await store.chat.audit_since(0, 10)] == ["user.create", "user.delete"]


async def test_media_rows(store: PostgresStorage, ring: KeyRing) -> None:
    media = MediaRecord(id="m1", uploader="a", kind="image", mime_type="image/png", name="cat.png",
                        size=10, kid=ring.current, created_at=3, width=4, height=5)  # fmt: skip
    await store.media.add_media(media)
    assert await store.media.get_media("m1") == media
    assert await store.media.attach_media("m1", "a", 42)
    assert not await store.media.attach_media("m1", "a", 43)
    assert not await store.media.attach_media("m1", "b", 42)
    assert [m.attached_to for m in await store.media.media_of("a")] == [42]
    await store.media.delete_media(["m1"])
    assert await store.media.get_media("m1") is None


async def test_the_writer_reconnects_after_losing_its_connection(
    store: PostgresStorage, url: str
) -> None:
    await store.chat.insert_message(new_message(1))
    async with connected(url) as admin:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # The batch that finds the connection gone fails (nothing was acknowledged; the caller
    # hears "unavailable, retry"); the next one runs on a new connection, with no restart.
    for i in range(2, 5):
        try:
            await store.chat.insert_message(new_message(i))
        except (RuntimeError, StorageUnavailable):
            continue
        break
    else:
        pytest.fail("the writer did not recover")
    stored = await store.chat.history("u:a:b", before=None, limit=10, viewer=None)
    assert stored[0].text == "hello 1" and len(stored) >= 2


def test_the_embedded_default_needs_no_asyncpg() -> None:
    code = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "import server.app, server.cli\n"
        "assert 'server.storage.postgres' not in sys.modules\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr


async def test_a_retry_in_the_batch_of_its_first_send_is_stored_once(
    store: PostgresStorage,
) -> None:
    """Concurrent sends share one INSERT; the same (sender, muid) twice in one batch (a
    client's retry before the first was acknowledged) is stored once, and both callers get
    the stored message."""
    results = await asyncio.gather(
        *(store.chat.insert_message(new_message(i)) for i in range(10)),
        store.chat.insert_message(new_message(3)),
        store.chat.insert_message(new_message(10)),
    )
    assert [created for _, created in results] == [True] * 10 + [False, True]
    assert results[10][0] == results[3][0]
    stored = await store.chat.history("u:a:b", before=None, limit=100, viewer=None)
    assert [m.text for m in stored] == [f"hello {i}" for i in range(11)]
    assert [m.id for m in stored] == sorted(m.id for m in stored)
