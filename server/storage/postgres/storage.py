"""``PostgresStorage``: builds the PostgreSQL repositories over one database, opens and
closes it; and the start-up key check's view of a database (``key_ids_in_use``, ``has_data``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from server.crypto import KeyRing
from server.storage.postgres.audit import PostgresAudit
from server.storage.postgres.deliveries import PostgresDeliveries
from server.storage.postgres.inbox import PostgresInbox
from server.storage.postgres.media import PostgresMedia
from server.storage.postgres.messages import PostgresMessages
from server.storage.postgres.moderation import PostgresModeration
from server.storage.postgres.operators import PostgresOperators
from server.storage.postgres.push import PostgresPush
from server.storage.postgres.reactions import PostgresReactions
from server.storage.postgres.retention import PostgresRetention
from server.storage.postgres.sanctions import PostgresSanctions
from server.storage.postgres.users import PostgresBlocks, PostgresGroups, PostgresUsers
from server.storage.postgres.writer import Database, connect
from server.storage.sealing import Sealer

T = TypeVar("T")

#: Every table holding sealed rows (their ``kid`` column names the key).
SEALED_TABLES = ("messages", "reports", "webhook_deliveries", "media")


class PostgresChatStore(
    PostgresUsers, PostgresGroups, PostgresBlocks, PostgresMessages, PostgresAudit
):
    """``ports.ChatStore``: the five chat repositories as one object over one database."""


class PostgresStorage:
    """Every repository over one PostgreSQL database: one writer (group commit), pooled readers.

    ``open()`` migrates and starts the writer; ``close()`` drains it. The repositories share
    the writer, so a verdict, its audit row and its review-queue entry commit together.
    Several processes may share the database.
    """

    def __init__(
        self,
        url: str,
        keyring: KeyRing,
        *,
        batch_max: int = 512,
        queue_size: int = 10_000,
        pool_size: int = 4,
    ) -> None:
        self.db = Database(url, batch_max=batch_max, queue_size=queue_size, pool_size=pool_size)
        sealer = Sealer(keyring, cache=20_000)  # opened rows kept: see Sealer
        self.chat = PostgresChatStore(self.db, sealer)
        #: The chat store as the moderation service sees it (messages and the audit log).
        self.messages = self.audit = self.chat
        self.moderation = PostgresModeration(self.db, keyring)
        self.deliveries = PostgresDeliveries(self.db, keyring)
        self.media = PostgresMedia(self.db, keyring)
        self.sanctions = PostgresSanctions(self.db)
        #: Operator accounts and dashboard sessions (issue 17).
        self.operators = PostgresOperators(self.db)
        #: The inbox and the user directory (issue 16).
        self.inbox = PostgresInbox(self.db, Sealer(keyring))
        #: Reactions and thread replies (issue 16 item 8).
        self.reactions = PostgresReactions(self.db, Sealer(keyring))
        #: Offline-push endpoints (issue 16 item 7).
        self.push = PostgresPush(self.db, Sealer(keyring))
        #: Retention periods, holds and the job's deletions (issue 15).
        self.retention = PostgresRetention(self.db, forget=self.chat.forget_opened)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


def _blocking(url: str, query: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``query(connection)`` to completion from synchronous code (the composition root
    runs before, and possibly inside, an event loop: so on a thread of its own)."""

    async def run() -> T:
        conn = await connect(url)
        try:
            return await query(conn)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-pg-check") as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


async def _key_ids(conn: Any) -> frozenset[str]:
    kids: set[str] = set()
    for table in SEALED_TABLES:
        if await conn.fetchval("SELECT to_regclass($1)", table) is None:
            continue
        # A loose index scan over ``<table>_kid``: one seek per distinct key id.
        rows = await conn.fetch(
            f"WITH RECURSIVE k(kid) AS (SELECT MIN(kid) FROM {table} UNION ALL"
            f" SELECT (SELECT MIN(kid) FROM {table} WHERE kid > k.kid) FROM k"
            " WHERE k.kid IS NOT NULL) SELECT kid FROM k WHERE kid IS NOT NULL"
        )
        kids.update(str(r["kid"]) for r in rows)
    return frozenset(kids)


async def _has_data(conn: Any) -> bool:
    return await conn.fetchval("SELECT to_regclass('parley_schema')") is not None


def key_ids_in_use(url: str) -> frozenset[str]:
    """The key ids that sealed rows of the database at ``url`` name; empty if none.

    Read before ``open()``: the server refuses to start when its keyring lacks one.
    """
    return _blocking(url, _key_ids)


def has_data(url: str) -> bool:
    """Whether Parley has used the database at ``url`` (its schema exists): a keyring is
    never minted over it."""
    return _blocking(url, _has_data)
