"""Users, groups (members, bans) and blocks on SQLite: the shared SQL of ``storage/users.py``."""

from __future__ import annotations

from server.storage.sqlite.base import Repository
from server.storage.users import BlocksSql, GroupsSql, UsersSql


class SqliteUsers(Repository, UsersSql):
    """``ports.UserRepository``. An erasure also empties the recent-message index."""

    def _forget_erased(self) -> None:
        self._recent.clear()


class SqliteGroups(Repository, GroupsSql):
    """``ports.GroupRepository``."""


class SqliteBlocks(Repository, BlocksSql):
    """``ports.BlockRepository``."""
