"""``ports.SanctionRepository`` on SQLite: the shared SQL of ``storage/sanctions.py``."""

from __future__ import annotations

from server.storage.sanctions import SanctionsSql
from server.storage.sqlite.sql import SqliteSql


class SqliteSanctions(SqliteSql, SanctionsSql):
    pass
