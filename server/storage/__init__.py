"""Storage: one interface (``Store``) the chat service uses; SQLite is the embedded default."""

from __future__ import annotations

from server.storage.base import AuditEntry, NewMessage, Store
from server.storage.sqlite import SqliteStore

__all__ = ["AuditEntry", "NewMessage", "SqliteStore", "Store"]
