"""The SQLite implementation of the storage ports (``server.storage.ports``).

Modules: ``writer`` (the database: one writer task with group commit, one reader),
``conn`` (the writer's connection as ops see it), ``recent`` (the in-memory recent-message
index), ``transaction`` (``ports.Transaction``), the repositories (``users``, ``messages``,
``audit``, ``moderation``, ``deliveries``), ``migrations``, and ``storage``
(``SqliteStorage``, which builds them). Message sealing is shared with the other backends
(``server.storage.sealing``). Only the composition root imports this package.
"""

from __future__ import annotations

from server.storage.sqlite.storage import SqliteStorage, key_ids_in_use

__all__ = ["SqliteStorage", "key_ids_in_use"]
