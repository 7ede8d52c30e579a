"""Offline-push endpoints (SQLite migration 16, PostgreSQL 9: ``push_schema.py``); the SQL both
backends share (``sqlite/push.py`` and ``postgres/push.py`` run it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.storage.sql import SharedSql, SqlTx
from server.storage.types import PushEndpoint

_COLUMNS = "id, uid, device_id, kind, url, include_text, created_at"


def _endpoint(r: Any) -> PushEndpoint:
    return PushEndpoint(
        r["id"], r["uid"], r["device_id"], r["kind"], r["url"], bool(r["include_text"]),
        r["created_at"],
    )  # fmt: skip


class PushSql(SharedSql):
    """``ports.PushRepository``."""

    async def put_endpoint(self, endpoint: PushEndpoint) -> PushEndpoint:
        e = endpoint

        async def op(tx: SqlTx) -> None:
            await tx.execute(
                f"INSERT INTO push_endpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (uid, device_id) DO UPDATE SET kind = excluded.kind,"
                " url = excluded.url, include_text = excluded.include_text,"
                " created_at = excluded.created_at",
                (e.id, e.uid, e.device_id, e.kind, e.url, int(e.include_text), e.created_at),
            )

        await self._transact(op)
        row = await self._one(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE uid = ? AND device_id = ?",
            (e.uid, e.device_id),
        )
        assert row is not None
        return _endpoint(row)

    async def endpoints_of(self, uids: Sequence[str]) -> list[PushEndpoint]:
        if not uids:
            return []
        among, params = self._any_of("uid", uids, "text")
        rows = await self._all(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE {among} ORDER BY uid, created_at", params
        )
        return [_endpoint(r) for r in rows]

    async def delete_endpoint(self, uid: str, endpoint_id: str) -> bool:
        async def op(tx: SqlTx) -> bool:
            return bool(
                await tx.execute(
                    "DELETE FROM push_endpoints WHERE uid = ? AND id = ?", (uid, endpoint_id)
                )
            )

        return await self._transact(op)
