"""``SqliteStorage``: builds the SQLite repositories over one database, opens and closes it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server.crypto import KeyRing
from server.storage.sealing import Sealer
from server.storage.sqlite.audit import SqliteAudit
from server.storage.sqlite.deliveries import SqliteDeliveries
from server.storage.sqlite.inbox import SqliteInbox
from server.storage.sqlite.media import SqliteMedia
from server.storage.sqlite.messages import SqliteMessages
from server.storage.sqlite.moderation import SqliteModeration
from server.storage.sqlite.operators import SqliteOperators
from server.storage.sqlite.push import SqlitePush
from server.storage.sqlite.reactions import SqliteReactions
from server.storage.sqlite.recent import RecentMessages
from server.storage.sqlite.retention import SqliteRetention
from server.storage.sqlite.sanctions import SqliteSanctions
from server.storage.sqlite.users import SqliteBlocks, SqliteGroups, SqliteUsers
from server.storage.sqlite.writer import Database


class SqliteChatStore(SqliteUsers, SqliteGroups, SqliteBlocks, SqliteMessages, SqliteAudit):
    """``ports.ChatStore``: the five chat repositories as one object over one database."""


class SqliteStorage:
    """Every repository over one SQLite file: one writer (group commit), one reader.

    ``open()`` migrates and starts the writer; ``close()`` drains it. The repositories share
    the writer, so a verdict, its audit row and its review-queue entry commit together.
    """

    def __init__(
        self,
        path: Path,
        keyring: KeyRing,
        *,
        synchronous: str = "FULL",
        batch_max: int = 512,
        queue_size: int = 10_000,
    ) -> None:
        self.db = Database(
            path, synchronous=synchronous, batch_max=batch_max, queue_size=queue_size
        )
        #: Decrypted newest messages per conversation and per sender (moderation context).
        self.recent = RecentMessages()
        self.chat = SqliteChatStore(self.db, Sealer(keyring), self.recent)
        #: The chat store as the moderation service sees it (messages and the audit log).
        self.messages = self.audit = self.chat
        self.moderation = SqliteModeration(self.db, keyring)
        self.deliveries = SqliteDeliveries(self.db, keyring)
        self.media = SqliteMedia(self.db, keyring)
        self.sanctions = SqliteSanctions(self.db)
        #: Operator accounts and dashboard sessions (issue 17).
        self.operators = SqliteOperators(self.db)
        #: The inbox and the user directory (issue 16).
        self.inbox = SqliteInbox(self.db, Sealer(keyring), self.recent)
        #: Reactions and thread replies (issue 16 item 8).
        self.reactions = SqliteReactions(self.db, Sealer(keyring), self.recent)
        #: Offline-push endpoints (issue 16 item 7).
        self.push = SqlitePush(self.db, Sealer(keyring), self.recent)
        #: Retention periods, holds and the job's deletions (issue 15).
        self.retention = SqliteRetention(self.db, path, self.recent)

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


def key_ids_in_use(path: Path) -> frozenset[str]:
    """The key ids that sealed rows of the database at ``path`` name; empty if none.

    Read before ``open()``: the server refuses to start when its keyring lacks one. Cheap
    at any size once the ``<table>_kid`` indexes exist (a migration adds them): a loose
    index scan, one seek per distinct id (0.3 ms on 200k messages, measured); before that
    migration has run, one plain scan per table (about 20-80 ms per 200k messages).
    """
    if not path.exists():
        return frozenset()
    conn = sqlite3.connect(path)
    try:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        kids: set[str] = set()
        for table in ("messages", "reports", "webhook_deliveries", "media"):  # every sealed table
            if table not in names:
                continue
            sql = (
                f"WITH RECURSIVE k(kid) AS (SELECT MIN(kid) FROM {table} UNION ALL"
                f" SELECT (SELECT MIN(kid) FROM {table} WHERE kid > k.kid) FROM k"
                " WHERE k.kid IS NOT NULL) SELECT kid FROM k WHERE kid IS NOT NULL"
                if f"{table}_kid" in names
                else f"SELECT DISTINCT kid FROM {table}"
            )
            kids.update(row[0] for row in conn.execute(sql))
        return frozenset(kids)
    finally:
        conn.close()
