"""Users, groups (members, bans) and blocks on PostgreSQL: the shared SQL of
``storage/users.py``."""

from __future__ import annotations

from server.storage.postgres.base import Repository
from server.storage.users import BlocksSql, GroupsSql, UsersSql


class PostgresUsers(Repository, UsersSql):
    """``ports.UserRepository``. An erasure also drops the opened rows kept in memory."""

    def _forget_erased(self) -> None:
        self.forget_opened()


class PostgresGroups(Repository, GroupsSql):
    """``ports.GroupRepository``."""


class PostgresBlocks(Repository, BlocksSql):
    """``ports.BlockRepository``."""
