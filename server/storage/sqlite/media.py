"""``ports.MediaRepository`` on SQLite: the shared SQL of ``storage/media.py``."""

from __future__ import annotations

from server.crypto import KeyRing
from server.storage.media import MediaSql
from server.storage.sqlite.sql import SqliteSql
from server.storage.sqlite.writer import Database


class SqliteMedia(SqliteSql, MediaSql):
    SAME_SECOND_ORDER = "rowid"

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        SqliteSql.__init__(self, db)
        MediaSql.__init__(self, keyring)
