"""``ports.MediaRepository`` on PostgreSQL: the shared SQL of ``storage/media.py`` (rows sealed
exactly as on SQLite, by the key that encrypted the blob files)."""

from __future__ import annotations

from server.crypto import KeyRing
from server.storage.media import MediaSql
from server.storage.postgres.sql import PostgresSql
from server.storage.postgres.writer import Database


class PostgresMedia(PostgresSql, MediaSql):
    SAME_SECOND_ORDER = "id"

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        PostgresSql.__init__(self, db)
        MediaSql.__init__(self, keyring)
