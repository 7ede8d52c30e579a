"""The audit log's rows read straight from PostgreSQL (``parley audit``)."""

from __future__ import annotations

import asyncio
from typing import Any

from server.storage.postgres.writer import connect
from server.storage.sanctions import AUDIT_COLUMNS


def read_audit(url: str) -> list[Any]:
    """Every audit record in id order."""

    async def fetch() -> list[Any]:
        conn = await connect(url)
        try:
            return list(await conn.fetch(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY id"))
        finally:
            await conn.close()

    return asyncio.run(fetch())
