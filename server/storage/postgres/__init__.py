"""The PostgreSQL implementation of the storage ports (``server.storage.ports``).

A sibling of ``server.storage.sqlite`` with the same shape: ``writer`` (one writer
connection with group commit, message ids, a reader pool), ``transaction``
(``ports.Transaction``), the repositories (``users``, ``messages``, ``audit``,
``moderation``, ``deliveries``, ``media``), ``migrations`` (its own numbered list), and ``storage``
(``PostgresStorage``, which builds them). Messages are sealed exactly as in SQLite
(``server.storage.sealing``). Needs the ``postgres`` extra (asyncpg); only the composition
root imports this package, and only when ``--database-url`` is set.
"""

from __future__ import annotations

from server.storage.postgres.storage import PostgresStorage, has_data, key_ids_in_use

__all__ = ["PostgresStorage", "has_data", "key_ids_in_use"]
