"""What the chat repositories share: the database, the sealer and the recent index."""

from __future__ import annotations

from server.storage.sealing import Sealer
from server.storage.sqlite.recent import RecentMessages
from server.storage.sqlite.sql import SqliteSql
from server.storage.sqlite.writer import Database


class Repository(SqliteSql):
    """A base for the repositories over one ``Database``; see ``storage.SqliteChatStore``."""

    def __init__(self, db: Database, sealer: Sealer, recent: RecentMessages) -> None:
        SqliteSql.__init__(self, db)
        self._sealer = sealer
        self._recent = recent
