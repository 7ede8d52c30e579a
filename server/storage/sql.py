"""Repositories written once in SQL for both backends.

``sanctions.py``, ``retention.py``, ``operators.py`` and ``moderation.py`` in this package hold
the statements; ``sqlite/sql.py`` and ``postgres/sql.py`` run them (a backend's repository is
``class SqliteX(SqliteSql, XSql)``). Statements are written with ``?`` placeholders, which the
PostgreSQL side numbers, and in the SQL both engines speak (``ON CONFLICT``, ``RETURNING``);
what differs between them is a ``SharedSql`` attribute (``FOR_UPDATE``), a ``SharedSql`` method
(``_any_of``: an ``IN`` list or an array) or a method the backend's transaction provides (the audit chain, the review queue's idempotent insert).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from server.storage.types import Audit

T = TypeVar("T")

#: Runs one statement inside a write transaction; the number of rows it touched.
Exec = Callable[[str, Sequence[Any]], Awaitable[int]]


class SqlTx(Protocol):
    """One write transaction of the backend's writer, as the shared SQL sees it."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it touched."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""
        ...

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a query (``row["name"]`` and ``row[0]`` both work), or None."""
        ...

    async def audit(self, audit: Audit | None, at: int) -> None:
        """Append an audit row to the hash chain (nothing for None)."""
        ...

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> bool:
        """Put a message in the review queue (idempotent); whether the entry is new."""
        ...

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        """Close the message's open review-queue entries."""
        ...


class SharedSql(ABC):
    """What a repository of shared SQL needs from its backend."""

    #: Appended to a ``SELECT`` of a row the transaction then writes: PostgreSQL locks the row
    #: against another process's writer; SQLite's one writer needs nothing.
    FOR_UPDATE: ClassVar[str]

    @abstractmethod
    async def _transact(self, fn: Callable[[SqlTx], Awaitable[T]]) -> T:
        """Run ``fn`` in a write transaction (sharing the group commit); its result once
        committed."""

    @abstractmethod
    def _any_of(
        self, column: str, values: Sequence[Any], sql_type: str = "bigint"
    ) -> tuple[str, tuple[Any, ...]]:
        """The condition "``column`` equals one of ``values``" (of ``sql_type``, which
        PostgreSQL's array needs) and its parameters."""

    @abstractmethod
    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of a read."""

    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._all(sql, params)
        return rows[0] if rows else None
