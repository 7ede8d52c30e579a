"""``ports.OperatorRepository`` on PostgreSQL: the shared SQL of ``storage/operators.py``,
its ``?`` placeholders numbered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from server.storage.operators import OperatorsSql
from server.storage.postgres.sanctions import numbered
from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.writer import Database, WriteTx
from server.storage.sanctions import Exec
from server.storage.types import Audit

T = TypeVar("T")


class PostgresOperators(OperatorsSql):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit, at: int) -> T:
        async def op(tx: WriteTx) -> T:
            async def run(sql: str, params: Sequence[Any]) -> int:
                return await tx.execute(numbered(sql), *params)

            result = await fn(run)
            if result is not False:  # nothing changed (no such operator): nothing to audit
                await insert_audit(tx, audit, at)
            return result

        return await self._db.write(op)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.fetchall(numbered(sql), *params))
