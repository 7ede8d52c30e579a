"""What the chat repositories share: the database and the sealer."""

from __future__ import annotations

from collections.abc import Iterable

from server.storage.postgres.sql import PostgresSql
from server.storage.postgres.writer import Database
from server.storage.sealing import Sealer


class Repository(PostgresSql):
    """A base for the repositories over one ``Database``; see ``storage.PostgresChatStore``."""

    def __init__(self, db: Database, sealer: Sealer) -> None:
        PostgresSql.__init__(self, db)
        self._sealer = sealer

    def forget_opened(self, ids: Iterable[int] | None = None) -> None:
        """Drop opened copies of rows whose content is gone (``ids``; every one for None);
        the chat store also drops the sender windows' (``PostgresMessages``)."""
        self._sealer.forget(ids)
