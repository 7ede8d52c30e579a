"""The shared SQL of ``server/storage/sql.py`` run on SQLite: the writer's connection inside an
op, and the reader pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from server.storage.sql import SharedSql, SqlTx
from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.transaction import close_review, enqueue_review, insert_audit
from server.storage.sqlite.writer import Database
from server.storage.types import Audit

T = TypeVar("T")


class SqliteSqlTx:
    """``SqlTx`` over the writer's connection of one op."""

    __slots__ = ("_conn",)

    def __init__(self, conn: WriteConnection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return (await self._conn.execute(sql, tuple(params))).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, [tuple(r) for r in rows])

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        async with self._conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def audit(self, audit: Audit | None, at: int) -> None:
        await insert_audit(self._conn, audit, at)

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> bool:
        return await enqueue_review(self._conn, message_id, state, rule_id, at)

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        await close_review(self._conn, message_id, decision, by, at)


class SqliteSql(SharedSql):
    """``SharedSql`` on a SQLite ``Database``."""

    FOR_UPDATE = ""  # one writer: nothing else writes between the read and the write

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _transact(self, fn: Callable[[SqlTx], Awaitable[T]]) -> T:
        async def op(conn: WriteConnection) -> T:
            return await fn(SqliteSqlTx(conn))

        return await self._db.write(op)

    def _any_of(
        self, column: str, values: Sequence[Any], sql_type: str = "bigint"
    ) -> tuple[str, tuple[Any, ...]]:
        return f"{column} IN ({', '.join('?' * len(values))})", tuple(values)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._db.fetchall(sql, tuple(params)))
