"""``ports.ModerationRepository`` on PostgreSQL: the shared SQL of ``storage/moderation.py``."""

from __future__ import annotations

from server.crypto import KeyRing
from server.storage.moderation import ModerationSql
from server.storage.postgres.sql import PostgresSql
from server.storage.postgres.writer import Database


class PostgresModeration(PostgresSql, ModerationSql):
    # Several processes' writers: a sequence, never reused.
    NEXT_REPORT_ID = "SELECT nextval('reports_id_seq')"

    def __init__(self, db: Database, keyring: KeyRing) -> None:
        PostgresSql.__init__(self, db)
        ModerationSql.__init__(self, keyring)
