"""``ports.ModerationRepository`` on SQLite: the shared SQL of ``storage/moderation.py``."""

from __future__ import annotations

from server.crypto import KeyRing
from server.storage.moderation import ModerationSql
from server.storage.sqlite.sql import SqliteSql
from server.storage.sqlite.writer import Database


class SqliteModeration(SqliteSql, ModerationSql):
    # One writer: the largest id plus one is free until this transaction commits.
    NEXT_REPORT_ID = "SELECT COALESCE(MAX(id), 0) + 1 FROM reports"

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        SqliteSql.__init__(self, db)
        ModerationSql.__init__(self, keyring)
