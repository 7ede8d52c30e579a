"""``ports.ReactionRepository`` on PostgreSQL: the shared SQL of ``storage/reactions.py``."""

from __future__ import annotations

from server.storage.postgres.base import Repository
from server.storage.reactions import ReactionsSql


class PostgresReactions(Repository, ReactionsSql):
    pass
