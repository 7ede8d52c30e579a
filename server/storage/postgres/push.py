"""``ports.PushRepository`` on PostgreSQL: the shared SQL of ``storage/push.py``."""

from __future__ import annotations

from server.storage.postgres.base import Repository
from server.storage.push import PushSql


class PostgresPush(Repository, PushSql):
    pass
