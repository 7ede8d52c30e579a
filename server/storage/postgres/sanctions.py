"""``ports.SanctionRepository`` on PostgreSQL: the shared SQL of ``storage/sanctions.py``."""

from __future__ import annotations

from server.storage.postgres.sql import PostgresSql
from server.storage.sanctions import SanctionsSql


class PostgresSanctions(PostgresSql, SanctionsSql):
    pass
