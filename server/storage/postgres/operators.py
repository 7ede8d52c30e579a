"""``ports.OperatorRepository`` on PostgreSQL: the shared SQL of ``storage/operators.py``."""

from __future__ import annotations

from server.storage.operators import OperatorsSql
from server.storage.postgres.sql import PostgresSql


class PostgresOperators(PostgresSql, OperatorsSql):
    pass
