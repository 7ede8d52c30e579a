"""``ports.PushRepository`` on SQLite: the shared SQL of ``storage/push.py``."""

from __future__ import annotations

from server.storage.push import PushSql
from server.storage.sqlite.base import Repository


class SqlitePush(Repository, PushSql):
    pass
