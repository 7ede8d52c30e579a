"""The audit log in PostgreSQL. Most audit rows are written by the change they describe, in
its transaction (``transaction.insert_audit``); this repository adds standalone ones and reads."""

from __future__ import annotations

import json
from typing import Any

from server.storage.postgres.base import Repository
from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.write_tx import WriteTx
from server.storage.types import Audit, AuditEntry


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["details"])
    )


class PostgresAudit(Repository):
    """``ports.AuditRepository``."""

    async def add_audit(self, audit: Audit, at: int) -> None:
        async def op(tx: WriteTx) -> None:
            await insert_audit(tx, audit, at)

        await self._db.write(op)

    async def audit_since(self, since: int, limit: int) -> list[AuditEntry]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit WHERE at >= $1 ORDER BY id LIMIT $2", since, limit
        )
        return [_entry(r) for r in rows]

    async def audit_of_group(self, guid: str, since: int, limit: int) -> list[AuditEntry]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit WHERE at >= $1 AND (target = $2"
            " OR details::jsonb ->> 'guid' = $2 OR details::jsonb ->> 'scope' = $3)"
            " ORDER BY id LIMIT $4",
            since,
            guid,
            f"group:{guid}",
            limit,
        )
        return [_entry(r) for r in rows]
