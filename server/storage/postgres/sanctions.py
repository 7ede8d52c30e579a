"""``ports.SanctionRepository`` on PostgreSQL: the shared SQL of ``storage/sanctions.py``,
its ``?`` placeholders numbered."""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.writer import Database, WriteTx
from server.storage.sanctions import Exec, SanctionsSql
from server.storage.types import Audit

T = TypeVar("T")


@lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """``?`` placeholders as ``$1``, ``$2``, ..."""
    counter = itertools.count(1)
    return re.sub(r"\?", lambda _m: f"${next(counter)}", sql)


class PostgresSanctions(SanctionsSql):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit, at: int) -> T:
        async def op(tx: WriteTx) -> T:
            async def run(sql: str, params: Sequence[Any]) -> int:
                return await tx.execute(numbered(sql), *params)

            result = await fn(run)
            await insert_audit(tx, audit, at)
            return result

        return await self._db.write(op)

    async def _all(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(await self._db.fetchall(numbered(sql), *params))
