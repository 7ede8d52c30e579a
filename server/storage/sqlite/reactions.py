"""``ports.ReactionRepository`` on SQLite: the shared SQL of ``storage/reactions.py``."""

from __future__ import annotations

from server.storage.reactions import ReactionsSql
from server.storage.sqlite.base import Repository


class SqliteReactions(Repository, ReactionsSql):
    pass
