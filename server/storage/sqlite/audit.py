"""The audit log in SQLite. Most audit rows are written by the change they describe, in its
transaction (``transaction.insert_audit``); this repository adds standalone ones and reads."""

from __future__ import annotations

import json
from typing import Any

from server.storage.sqlite.base import Repository
from server.storage.sqlite.conn import WriteConnection
from server.storage.sqlite.transaction import insert_audit
from server.storage.types import Audit, AuditEntry


def _entry(r: Any) -> AuditEntry:
    return AuditEntry(
        r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["details"])
    )


class SqliteAudit(Repository):
    """``ports.AuditRepository``."""

    async def add_audit(self, audit: Audit, at: int) -> None:
        async def op(conn: WriteConnection) -> None:
            await insert_audit(conn, audit, at)

        await self._db.write(op)

    async def audit_since(self, since: int, limit: int) -> list[AuditEntry]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit WHERE at >= ? ORDER BY id LIMIT ?", (since, limit)
        )
        return [_entry(r) for r in rows]

    async def audit_of_group(self, guid: str, since: int, limit: int) -> list[AuditEntry]:
        rows = await self._db.fetchall(
            "SELECT * FROM audit WHERE at >= ? AND (target = ?"
            " OR json_extract(details, '$.guid') = ? OR json_extract(details, '$.scope') = ?)"
            " ORDER BY id LIMIT ?",
            (since, guid, guid, f"group:{guid}", limit),
        )
        return [_entry(r) for r in rows]
