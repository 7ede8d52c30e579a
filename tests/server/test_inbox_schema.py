"""The inbox's heads and read markers (server/storage/*/inbox_schema.py), kept by triggers:
each write that moves them, then the tables, on SQLite and on a real PostgreSQL; the backfill
of a database that had messages before the migration; the migration script splitter."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from server.storage.postgres import migrations as pg_migrations
from server.storage.postgres.inbox_schema import INBOX_MIGRATION as PG_INBOX
from server.storage.sqlite.inbox_schema import INBOX_MIGRATION as SQLITE_INBOX
from server.storage.sqlite.inbox_schema import INBOX_STATUS_SPLIT
from server.storage.sqlite.migrations import MIGRATIONS
from server.storage.sqlite.writer import split_statements
from tests.pg import cluster

Exec = Callable[[str], Awaitable[None]]
Query = Callable[[str], Awaitable[list[tuple[object, ...]]]]


def message(mid: int, sender: str, receiver: str, kind: str, status: str, body: str) -> str:
    if kind == "group":
        key = f"g:{receiver}"
    else:
        a, b = sorted((sender, receiver))
        key = f"u:{a}:{b}"
    return (
        "INSERT INTO messages (id, muid, conversation_id, sender, receiver, receiver_type,"
        " category, type, kid, body, sent_at, updated_at, status, conv_key) VALUES"
        f" ({mid}, 'm{mid}', 'cid', '{sender}', '{receiver}', '{kind}', 'custom', 'n', 'k',"
        f" {body}, {100 + mid}, {100 + mid}, '{status}', '{key}')"
    )


async def heads(query: Query) -> dict[str, object]:
    return {
        "direct": sorted(await query("SELECT uid, conv_key, peer, last_id FROM inbox_direct")),
        "group": sorted(await query("SELECT conv_key, last_id FROM inbox_heads")),
        "own": sorted(await query("SELECT uid, conv_key, last_id FROM inbox_own")),
        "read": sorted(await query("SELECT uid, conv_key, read_id FROM read_markers")),
    }


async def scenario(execute: Exec, query: Query, body: str) -> None:
    """Every kind of write, with the heads each must leave."""
    await execute(
        "INSERT INTO users (uid, name, role, created_at, updated_at) VALUES ('b', 'B', 'user', 0, 0)"
    )
    for mid, sender, receiver, kind, status in (
        (1, "a", "b", "user", "approved"),
        (2, "b", "a", "user", "pending"),
        (3, "a", "g", "group", "unmoderated"),
        (4, "b", "g", "group", "pending"),
    ):
        await execute(message(mid, sender, receiver, kind, status, body))
    await execute("INSERT INTO members (guid, uid, scope, joined_at) VALUES ('g', 'c', 1, 5)")
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1), ("b", "u:a:b", "a", 2)]
    assert got["group"] == [("g:g", 3)] and got["own"] == [("b", "g:g", 4)]
    assert got["read"] == [("c", "g:g", 4)]  # joining reads what came before

    await execute("UPDATE messages SET status = 'approved' WHERE id IN (2, 4)")  # verdicts
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 2), ("b", "u:a:b", "a", 2)]
    assert got["group"] == [("g:g", 4)]
    await execute("UPDATE messages SET status = 'pending' WHERE id IN (2, 3)")  # edited
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1), ("b", "u:a:b", "a", 2)]
    assert got["group"] == [("g:g", 4)] and ("a", "g:g", 3) in got["own"]
    await execute("INSERT INTO receipts (message_id, uid, type, at) VALUES (1, 'b', 'read', 1)")
    await execute(
        "INSERT INTO receipts (message_id, uid, type, at) VALUES (1, 'a', 'delivered', 1)"
    )
    assert (await heads(query))["read"] == [("b", "u:a:b", 1), ("c", "g:g", 4)]

    await execute("DELETE FROM messages WHERE id = 2")  # an erasure removes b's messages
    await execute("DELETE FROM messages WHERE id = 4")
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1), ("b", "u:a:b", "a", 1)]
    assert got["group"] == [] and got["own"] == [("a", "g:g", 3)]
    await execute("DELETE FROM users WHERE uid = 'b'")
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1)] and got["read"] == [("c", "g:g", 4)]


def sqlite_db(upto: int | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    for sql in MIGRATIONS[:upto]:
        for statement in split_statements(sql):
            conn.execute(statement)
    return conn


def sqlite_io(conn: sqlite3.Connection) -> tuple[Exec, Query]:
    async def execute(sql: str) -> None:
        conn.execute(sql)

    async def query(sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in conn.execute(sql)]

    return execute, query


async def test_sqlite_triggers_keep_the_heads() -> None:
    await scenario(*sqlite_io(sqlite_db()), "X'00'")


@pytest.fixture
async def pg() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(cluster().database(f"inbox-{uuid.uuid4().hex}"))
    try:
        yield conn
    finally:
        await conn.close()


def pg_io(conn: asyncpg.Connection) -> tuple[Exec, Query]:
    async def execute(sql: str) -> None:
        await conn.execute(sql)

    async def query(sql: str) -> list[tuple[object, ...]]:
        return [tuple(r) for r in await conn.fetch(sql)]

    return execute, query


async def test_postgres_triggers_keep_the_heads(pg: asyncpg.Connection) -> None:
    for sql in pg_migrations.MIGRATIONS:
        await pg.execute(sql)
    await scenario(*pg_io(pg), "'\\x00'::bytea")


async def backfill(execute: Exec, body: str) -> None:
    """Messages and a receipt stored before the inbox migration."""
    for mid, sender, receiver, kind, status in (
        (1, "a", "b", "user", "approved"),
        (2, "b", "a", "user", "pending"),
        (3, "a", "g", "group", "unmoderated"),
        (4, "b", "g", "group", "disapproved"),
    ):
        await execute(message(mid, sender, receiver, kind, status, body))
    await execute("INSERT INTO receipts (message_id, uid, type, at) VALUES (1, 'b', 'read', 1)")


async def test_sqlite_backfill_of_existing_messages() -> None:
    at = MIGRATIONS.index(SQLITE_INBOX)
    conn = sqlite_db(at)
    execute, query = sqlite_io(conn)
    await backfill(execute, "X'00'")
    for statement in split_statements(SQLITE_INBOX):
        conn.execute(statement)
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1), ("b", "u:a:b", "a", 2)]
    assert got["group"] == [("g:g", 3)] and ("b", "g:g", 4) in got["own"]
    assert got["read"] == [("b", "u:a:b", 1)]
    assert [r[0] for r in await query("SELECT last_at FROM inbox_direct ORDER BY uid")] == [
        101,
        102,
    ]


async def test_postgres_backfill_of_existing_messages(pg: asyncpg.Connection) -> None:
    at = pg_migrations.MIGRATIONS.index(PG_INBOX)
    for sql in pg_migrations.MIGRATIONS[:at]:
        await pg.execute(sql)
    execute, query = pg_io(pg)
    await backfill(execute, "'\\x00'::bytea")
    await pg.execute(PG_INBOX)
    got = await heads(query)
    assert got["direct"] == [("a", "u:a:b", "b", 1), ("b", "u:a:b", "a", 2)]
    assert got["group"] == [("g:g", 3)] and ("b", "g:g", 4) in got["own"]
    assert got["read"] == [("b", "u:a:b", 1)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "CREATE TABLE t (x); CREATE TABLE u (y);",
            ["CREATE TABLE t (x);", " CREATE TABLE u (y);"],
        ),
        ("-- a; comment\nSELECT 1;", ["-- a; comment\nSELECT 1;"]),
        (
            "CREATE TRIGGER r AFTER INSERT ON t BEGIN DELETE FROM u; DELETE FROM u; END;",
            ["CREATE TRIGGER r AFTER INSERT ON t BEGIN DELETE FROM u; DELETE FROM u; END;"],
        ),
        ("  ;\n ; ", []),
    ],
)
def test_split_statements(script: str, expected: list[str]) -> None:
    assert split_statements(script) == expected


def test_sqlite_split_status_triggers_keep_the_same_heads_as_the_first() -> None:
    """Migration 12 replaced migration 9's status trigger by four cheaper ones: over a seeded
    random run of inserts, verdicts both ways, shadow bans and deletions, the heads of both
    stay identical after every write."""
    split = MIGRATIONS.index(INBOX_STATUS_SPLIT)
    old, new = sqlite_db(split), sqlite_db()
    rng = random.Random(12)
    people, groups = ["a", "b", "c"], ["g", "h"]
    statuses = ["pending", "approved", "unmoderated", "disapproved"]
    writes: list[str] = []
    for mid in range(1, 400):
        roll = rng.random()
        if roll < 0.45 or mid < 5:
            sender = rng.choice(people)
            if rng.random() < 0.5:
                receiver, kind = rng.choice([p for p in people if p != sender]), "user"
            else:
                receiver, kind = rng.choice(groups), "group"
            writes.append(message(mid, sender, receiver, kind, rng.choice(statuses), "X'00'"))
        elif roll < 0.9:
            target = rng.randrange(1, mid)
            writes.append(
                f"UPDATE messages SET status = '{rng.choice(statuses)}' WHERE id = {target}"
            )
        elif roll < 0.95:
            writes.append(
                "INSERT INTO restrictions (id, uid, kind, scope, until_at, reason, decision_id,"
                f" by_actor, at) VALUES ('r{mid}', '{rng.choice(people)}', 'shadow_ban',"
                f" 'global', {100 + mid + 30}, '', '', 'x', {100 + mid})"
            )
        else:
            writes.append(f"DELETE FROM messages WHERE id = {rng.randrange(1, mid)}")
    shown = 0
    for sql in writes:
        old.execute(sql)
        new.execute(sql)
        query = "SELECT * FROM inbox_direct UNION ALL SELECT conv_key, last_id, last_at, 0, 0"
        query += " FROM inbox_heads UNION ALL SELECT uid, conv_key, last_id, last_at, 1"
        query += " FROM inbox_own ORDER BY 1, 2, 3"
        before, after = old.execute(query).fetchall(), new.execute(query).fetchall()
        assert before == after, sql
        shown += len(after)
    assert shown > 1000  # the heads were not trivially empty
