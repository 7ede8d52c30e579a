"""The shared SQL of ``server/storage/sql.py`` run on PostgreSQL: its ``?`` placeholders
numbered, on the writer's transaction of an op and on the reader pool."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from server.storage.postgres.transaction import close_review, enqueue_review, insert_audit
from server.storage.postgres.write_tx import WriteTx
from server.storage.postgres.writer import Database
from server.storage.sql import SharedSql, SqlTx
from server.storage.types import Audit

T = TypeVar("T")


@lru_cache(maxsize=512)
def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1``, ``$2``, ..."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


class PostgresSqlTx:
    """``SqlTx`` over the writer's transaction of one op."""

    __slots__ = ("_tx",)

    def __init__(self, tx: WriteTx) -> None:
        self._tx = tx

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return await self._tx.execute(numbered(sql), *params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._tx.executemany(numbered(sql), rows)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return await self._tx.fetchrow(numbered(sql), *params)

    async def audit(self, audit: Audit | None, at: int) -> None:
        await insert_audit(self._tx, audit, at)

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> bool:
        return await enqueue_review(self._tx, message_id, state, rule_id, at)

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        await close_review(self._tx, message_id, decision, by, at)


class PostgresSql(SharedSql):
    """``SharedSql`` on a PostgreSQL ``Database``."""

    FOR_UPDATE = " FOR UPDATE"  # other processes' writers share the database

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _transact(self, fn: Callable[[SqlTx], Awaitable[T]]) -> T:
        async def op(tx: WriteTx) -> T:
            return await fn(PostgresSqlTx(tx))

        return await self._db.write(op)

    def _any_of(
        self, column: str, values: Sequence[Any], sql_type: str = "bigint"
    ) -> tuple[str, tuple[Any, ...]]:
        return f"{column} = ANY(?::{sql_type}[])", (list(values),)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._db.fetchall(numbered(sql), *params))
