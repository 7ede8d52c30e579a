"""The audit log in PostgreSQL. Most audit rows are written by the change they describe, in
its transaction (``transaction.insert_audit``); this repository adds standalone ones and reads."""

from __future__ import annotations

import json

from server.storage.postgres.base import Repository
from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.writer import WriteTx
from server.storage.types import Audit, AuditEntry


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
        return [
            AuditEntry(
                r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["details"])
            )
            for r in rows
        ]
