"""Offline-push endpoints in SQLite (migration 16, ``push_schema.py``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from server.storage.sqlite.base import Repository
from server.storage.sqlite.conn import WriteConnection
from server.storage.types import PushEndpoint

_COLUMNS = "id, uid, device_id, kind, url, include_text, created_at"


def _endpoint(r: sqlite3.Row) -> PushEndpoint:
    return PushEndpoint(
        r["id"], r["uid"], r["device_id"], r["kind"], r["url"], bool(r["include_text"]),
        r["created_at"],
    )  # fmt: skip


class SqlitePush(Repository):
    """``ports.PushRepository``."""

    async def put_endpoint(self, endpoint: PushEndpoint) -> PushEndpoint:
        e = endpoint

        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                f"INSERT INTO push_endpoints ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (uid, device_id) DO UPDATE SET kind = excluded.kind,"
                " url = excluded.url, include_text = excluded.include_text,"
                " created_at = excluded.created_at",
                (e.id, e.uid, e.device_id, e.kind, e.url, int(e.include_text), e.created_at),
            )

        await self._db.write(op)
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE uid = ? AND device_id = ?",
            (e.uid, e.device_id),
        )
        assert row is not None
        return _endpoint(row)

    async def endpoints_of(self, uids: Sequence[str]) -> list[PushEndpoint]:
        if not uids:
            return []
        marks = ", ".join("?" * len(uids))
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE uid IN ({marks}) ORDER BY uid, created_at",
            tuple(uids),
        )
        return [_endpoint(r) for r in rows]

    async def delete_endpoint(self, uid: str, endpoint_id: str) -> bool:
        async def op(conn: WriteConnection) -> bool:
            cur = await conn.execute(
                "DELETE FROM push_endpoints WHERE uid = ? AND id = ?", (uid, endpoint_id)
            )
            return bool(cur.rowcount)

        return await self._db.write(op)
