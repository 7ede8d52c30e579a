"""Offline-push endpoints in PostgreSQL (migration 9, ``push_schema.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.storage.postgres.base import Repository
from server.storage.postgres.writer import WriteTx
from server.storage.types import PushEndpoint

_COLUMNS = "id, uid, device_id, kind, url, include_text, created_at"


def _endpoint(r: Any) -> PushEndpoint:
    return PushEndpoint(
        r["id"], r["uid"], r["device_id"], r["kind"], r["url"], bool(r["include_text"]),
        r["created_at"],
    )  # fmt: skip


class PostgresPush(Repository):
    """``ports.PushRepository``."""

    async def put_endpoint(self, endpoint: PushEndpoint) -> PushEndpoint:
        e = endpoint

        async def op(tx: WriteTx) -> None:
            await tx.execute(
                f"INSERT INTO push_endpoints ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (uid, device_id) DO UPDATE SET kind = excluded.kind,"
                " url = excluded.url, include_text = excluded.include_text,"
                " created_at = excluded.created_at",
                e.id, e.uid, e.device_id, e.kind, e.url, int(e.include_text), e.created_at,
            )  # fmt: skip

        await self._db.write(op)
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE uid = $1 AND device_id = $2",
            e.uid,
            e.device_id,
        )
        assert row is not None
        return _endpoint(row)

    async def endpoints_of(self, uids: Sequence[str]) -> list[PushEndpoint]:
        if not uids:
            return []
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM push_endpoints WHERE uid = ANY($1::text[])"
            " ORDER BY uid, created_at",
            list(uids),
        )
        return [_endpoint(r) for r in rows]

    async def delete_endpoint(self, uid: str, endpoint_id: str) -> bool:
        async def op(tx: WriteTx) -> bool:
            return bool(
                await tx.execute(
                    "DELETE FROM push_endpoints WHERE uid = $1 AND id = $2", uid, endpoint_id
                )
            )

        return await self._db.write(op)
