"""``ports.OperatorRepository`` on SQLite: the shared SQL of ``storage/operators.py``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from server.storage.operators import OperatorsSql
from server.storage.sanctions import Exec
from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.transaction import insert_audit
from server.storage.sqlite.writer import Database
from server.storage.types import Audit

T = TypeVar("T")


class SqliteOperators(OperatorsSql):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit, at: int) -> T:
        async def op(conn: WriteConnection) -> T:
            async def run(sql: str, params: Sequence[Any]) -> int:
                return (await conn.execute(sql, tuple(params))).rowcount

            result = await fn(run)
            if result is not False:  # nothing changed (no such operator): nothing to audit
                await insert_audit(conn, audit, at)
            return result

        return await self._db.write(op)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.fetchall(sql, tuple(params)))
