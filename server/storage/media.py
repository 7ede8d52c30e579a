"""``ports.MediaRepository``: one row per upload, its name and dimensions sealed; the SQL both
backends share (``sqlite/media.py`` and ``postgres/media.py`` run it, see ``sql.py``).

The name (and size in pixels, duration) are one JSON object sealed with the data keyring,
with the media id and uploader as associated data; the key id is stored beside it (and is
the one that encrypted the blob files, see ``server/media/blobcrypt.py``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from server import jsoncodec
from server.crypto import KeyRing
from server.storage.sql import SharedSql, SqlTx
from server.storage.types import MediaRecord

_COLUMNS = (
    "id, uploader, kind, mime_type, size, kid, body, thumb_mime, thumb_size, created_at,"
    " attached_to"
)
#: What a read returns: the inserted columns and the quarantine mark (migration: sqlite 11,
#: postgres 6), which only ``quarantine_media`` sets.
_SELECT = _COLUMNS + ", quarantined_at"


def _aad(media_id: str, uploader: str) -> bytes:
    return f"parley:media-row:{media_id}:{uploader}".encode()


class MediaSql(SharedSql):
    """Media rows over the shared database and writer."""

    #: What orders one uploader's uploads of the same second: the order they were stored in
    #: where the engine keeps one (SQLite's ``rowid``), else the id.
    SAME_SECOND_ORDER: ClassVar[str]

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring

    def _row(self, row: Any) -> MediaRecord:
        body = json.loads(
            self._keyring.open(row["kid"], row["body"], _aad(row["id"], row["uploader"]))
        )
        return MediaRecord(
            id=row["id"],
            uploader=row["uploader"],
            kind=row["kind"],
            mime_type=row["mime_type"],
            name=body["name"],
            size=row["size"],
            kid=row["kid"],
            created_at=row["created_at"],
            width=body.get("width"),
            height=body.get("height"),
            duration=body.get("duration"),
            thumb_mime=row["thumb_mime"],
            thumb_size=row["thumb_size"],
            attached_to=row["attached_to"],
            quarantined_at=row["quarantined_at"],
        )

    async def add_media(self, media: MediaRecord) -> None:
        body: dict[str, Any] = {"name": media.name, "width": media.width, "height": media.height}
        if media.duration is not None:
            body["duration"] = media.duration
        opened = jsoncodec.dumps(body).encode()
        # The row's key is the one that encrypted the files, so both rotate together.
        cipher = KeyRing(media.kid, self._keyring.keys)
        kid, sealed = cipher.seal(opened, _aad(media.id, media.uploader))

        async def op(tx: SqlTx) -> None:
            await tx.execute(
                f"INSERT INTO media ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    media.id,
                    media.uploader,
                    media.kind,
                    media.mime_type,
                    media.size,
                    kid,
                    sealed,
                    media.thumb_mime,
                    media.thumb_size,
                    media.created_at,
                    media.attached_to,
                ),
            )

        await self._transact(op)

    async def get_media(self, media_id: str) -> MediaRecord | None:
        row = await self._one(f"SELECT {_SELECT} FROM media WHERE id = ?", (media_id,))
        return self._row(row) if row else None

    async def media_of(self, uploader: str) -> list[MediaRecord]:
        """Everything ``uploader`` uploaded, oldest first."""
        rows = await self._all(
            f"SELECT {_SELECT} FROM media WHERE uploader = ?"
            f" ORDER BY created_at, {self.SAME_SECOND_ORDER}",
            (uploader,),
        )
        return [self._row(r) for r in rows]

    async def attach_media(self, media_id: str, uploader: str, message_id: int) -> bool:
        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute(
                "UPDATE media SET attached_to = ? WHERE id = ? AND uploader = ?"
                " AND (attached_to IS NULL OR attached_to = ?)",
                (message_id, media_id, uploader, message_id),
            )
            return changed == 1

        return await self._transact(op)

    async def quarantine_media(self, media_id: str, at: int) -> bool:
        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute(
                "UPDATE media SET quarantined_at = ? WHERE id = ? AND quarantined_at = 0",
                (max(at, 1), media_id),
            )
            return changed == 1

        return await self._transact(op)

    async def release_media(self, media_id: str) -> bool:
        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute(
                "UPDATE media SET quarantined_at = 0 WHERE id = ? AND quarantined_at != 0",
                (media_id,),
            )
            return changed == 1

        return await self._transact(op)

    async def retain_media(self, media_id: str, uploader: str, holder: str) -> bool:
        row = await self._one(
            "SELECT kid, body FROM media WHERE id = ? AND uploader = ?", (media_id, uploader)
        )
        if row is None:
            return False
        opened = self._keyring.open(row["kid"], row["body"], _aad(media_id, uploader))
        _, sealed = KeyRing(row["kid"], self._keyring.keys).seal(opened, _aad(media_id, holder))

        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute(
                "UPDATE media SET uploader = ?, body = ? WHERE id = ? AND uploader = ?",
                (holder, sealed, media_id, uploader),
            )
            return changed == 1

        return await self._transact(op)

    async def delete_media(self, media_ids: Sequence[str]) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.executemany("DELETE FROM media WHERE id = ?", [(m,) for m in media_ids])

        await self._transact(op)
