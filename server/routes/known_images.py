"""Known-bad image lists and quarantined media (issue 12 item 7).

- ``POST /api/v1/moderation/lists/{listId}/images`` (staff or the API key): multipart
  ``file``, an image; its pHash, and those of two centre crops (``phash.CROP_VARIANTS``:
  4% and 8% off each side, so cropped copies match too), are added to the ``image_hashes``
  list ``listId``. The image is parsed in memory (never on disk, never kept): only hashes are
  stored. 201 with ``{hash, hashes, added, list}`` (``hash``: the whole image's; ``added``:
  how many were new; 200 with ``added`` 0 when the list held them all).
- ``DELETE /api/v1/media/{mediaId}`` (an admin or the API key): deletes an upload (row,
  encrypted blob and thumbnail), quarantined or not; audited. 204.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moderation.detectors.image_hash import LIST_KIND
from moderation.phash import to_hex, variant_hashes
from server.errors import BadRequest, TooLarge, UnsupportedMedia
from server.media.quarantine import MediaQuarantine
from server.media.service import MULTIPART_SLACK, MediaService
from server.media.upload import FilePart, MultipartReader, boundary_of
from server.moderation_service.admin import ModerationAdmin
from server.routes.common import Deps, ok, require_admin, require_staff, require_unlimited


class _Buffer:
    """The file part, in memory, refused past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()

    def open(self, part: FilePart) -> _Buffer:
        return self

    def write(self, data: bytes) -> int:
        self.data += data
        if len(self.data) > self.limit:
            raise TooLarge(f"the image is larger than {self.limit} bytes", {"limit": self.limit})
        return len(data)


async def _read_image(request: Request, limit: int) -> bytes:
    boundary = boundary_of(request.headers.get("content-type", ""))
    buffer = _Buffer(limit)
    reader = MultipartReader(boundary, buffer.open)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit + MULTIPART_SLACK:
            raise TooLarge(f"the image is larger than {limit} bytes", {"limit": limit})
        if chunk:
            reader.feed(chunk)
    reader.finish()
    return bytes(buffer.data)


def routes(
    deps: Deps, admin: ModerationAdmin, media: MediaService, quarantine: MediaQuarantine
) -> list[Route]:
    users = deps.users

    async def add_image(request: Request) -> Response:
        who = await require_staff(request, users)
        require_unlimited(who, "change a list every conversation uses")
        list_id = request.path_params["list_id"]
        found = await admin.get_list(list_id)
        if found.get("kind") != LIST_KIND:
            raise BadRequest(f"list {list_id!r} is not an {LIST_KIND} list", {"listId": list_id})
        data = await _read_image(request, media.limits.image)
        try:
            values = await asyncio.to_thread(
                variant_hashes, data, max_pixels=media.limits.max_pixels
            )
        except ValueError as exc:
            raise UnsupportedMedia(f"the file is not a usable image: {exc}") from None
        hashes = [to_hex(v) for v in values]
        items = [str(i) for i in found.get("items") or []]
        new = [h for h in hashes if h not in items]
        stored: dict[str, Any] = found
        if new:
            body: dict[str, Any] = {k: found[k] for k in ("name", "kind", "allow") if k in found}
            # Validated as any list write: the count cap, and it reloads the engine.
            stored = await admin.replace_list(
                list_id, {**body, "items": [*items, *new]}, actor=who.actor
            )
        return ok(
            {"hash": hashes[0], "hashes": hashes, "added": len(new), "list": stored},
            201 if new else 200,
        )

    async def delete_media(request: Request) -> Response:
        who = await require_admin(request, users, "only an admin or the API key deletes media")
        await quarantine.delete(request.path_params["media_id"], actor=who.actor)
        return Response(status_code=204)

    return [
        Route("/moderation/lists/{list_id}/images", add_image, methods=["POST"]),
        Route("/media/{media_id}", delete_media, methods=["DELETE"]),
    ]
