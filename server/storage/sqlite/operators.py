"""``ports.OperatorRepository`` on SQLite: the shared SQL of ``storage/operators.py``."""

from __future__ import annotations

from server.storage.operators import OperatorsSql
from server.storage.sqlite.sql import SqliteSql


class SqliteOperators(SqliteSql, OperatorsSql):
    pass
