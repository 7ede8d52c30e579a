"""Media routes: ``POST /api/v1/media``, ``GET /api/v1/media/{mediaId}`` and the signed
downloads ``GET /media/{mediaId}`` and ``GET /media/{mediaId}/thumbnail`` (at the root)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.errors import BadRequest, Forbidden
from server.media.blobcrypt import CHUNK, BlobReader
from server.media.http import MEDIA_CSP, RangeNotSatisfiable, content_disposition, parse_range
from server.media.kinds import parse_kind
from server.media.service import Download, MediaService
from server.protocol import is_ident
from server.routes.common import Deps, caller

log = logging.getLogger(__name__)


def api_routes(deps: Deps, media: MediaService) -> list[Route]:
    """The ``/api/v1`` routes: upload (user token, or the API key with ``?uploader=``)
    and a fresh media object with links."""

    async def upload(request: Request) -> Response:
        who = await caller(request, deps.users)
        if who.user is not None:
            user = who.user
        elif who.principal.is_api_key:
            uid = request.query_params.get("uploader", "")
            if not is_ident(uid):
                raise BadRequest("with the API key, name the uploader: ?uploader=<uid>")
            user = await media.uploader(uid)
        else:
            raise Forbidden("this call needs a user token")
        kind = None
        if raw := request.query_params.get("kind"):
            kind = parse_kind(raw)
            if kind is None:
                raise BadRequest("kind must be image, video, audio or file", {"field": "kind"})
        declared = request.headers.get("content-length")
        length = int(declared) if declared and declared.isascii() and declared.isdigit() else None
        record = await media.upload(
            user,
            content_type=request.headers.get("content-type", ""),
            content_length=length,
            body=request.stream(),
            kind=kind,
        )
        return JSONResponse(media.describe(record, user), status_code=201)

    async def get_media(request: Request) -> Response:
        who = await caller(request, deps.users)
        if who.user is None:
            raise Forbidden("this call needs a user token")
        return JSONResponse(await media.get(who.user, request.path_params["media_id"]))

    return [
        Route("/media", upload, methods=["POST"]),
        Route("/media/{media_id}", get_media, methods=["GET"]),
    ]


def download_routes(media: MediaService) -> list[Route]:
    """``/media/{mediaId}`` and ``/media/{mediaId}/thumbnail``: the token is the credential."""

    def handler(variant: str) -> Route:
        async def download(request: Request) -> Response:
            found = await media.open_download(
                request.path_params["media_id"], variant, request.query_params.get("token")
            )
            return await _serve(found, request)

        suffix = "/thumbnail" if variant == "thumbnail" else ""
        return Route(f"/media/{{media_id}}{suffix}", download, methods=["GET", "HEAD"])

    return [handler("original"), handler("thumbnail")]


async def _serve(found: Download, request: Request) -> Response:
    reader = await asyncio.to_thread(found.open)
    size = reader.size
    expected = found.record.size if found.variant == "original" else found.record.thumb_size
    if size != expected:
        reader.close()
        raise RuntimeError(f"media {found.record.id} ({found.variant}) has the wrong size")
    headers = {
        "Content-Disposition": content_disposition(found.filename, inline=found.inline),
        "Content-Security-Policy": MEDIA_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Accept-Ranges": "bytes",
    }
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        reader.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = wanted if wanted is not None else (0, size - 1)
    status = 206 if wanted is not None else 200
    if wanted is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    headers["Content-Length"] = str(last - first + 1)
    if request.method == "HEAD":
        reader.close()
        return Response(status_code=status, headers=headers, media_type=found.mime_type)
    return StreamingResponse(
        _stream(reader, first, last - first + 1, found),
        status_code=status,
        headers=headers,
        media_type=found.mime_type,
    )


async def _stream(
    reader: BlobReader, start: int, length: int, found: Download
) -> AsyncIterator[bytes]:
    """Decrypt ``length`` bytes from ``start``, chunk by chunk, in a worker thread."""
    try:
        reader.seek(start)
        remaining = length
        while remaining > 0:
            data = await asyncio.to_thread(reader.read_chunk, min(remaining, CHUNK))
            if not data:
                raise RuntimeError(f"media {found.record.id} ended early")
            remaining -= len(data)
            yield data
    except Exception:
        # The status line is gone: cutting the body short is how the client learns of it.
        log.exception("streaming media %s (%s) failed", found.record.id, found.variant)
        raise
    finally:
        reader.close()
