"""``MediaService``: uploads, signed per-viewer links, downloads, export and erasure.

Over 400 lines: the one owner of the media rows and of the policy over them (who may view,
quarantine, erasure); what an upload becomes on disk lives in ``ingest.py``, and the pure
parts beside it (blobcrypt, links, kinds, images, frames, upload, http). The metadata row is
in the database (``ports.MediaRepository``); the multipart body is parsed as it arrives and
each chunk encrypted before it is written (``ingest.Incoming``).

Who may view what is one policy, ``may_view``: the uploader always; anyone else only once
the media is attached to a message they may see, which the messaging service answers through
the ``message_visible`` hook it is built with (until then: nobody else).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moderation.types import Frame, MediaContent
from server.clock import SYSTEM_CLOCK, Clock
from server.crypto import KeyRing
from server.errors import (
    AuthInvalid,
    AuthRequired,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    TooLarge,
)
from server.media import frames
from server.media.blobcrypt import BlobReader
from server.media.ingest import Incoming, MediaFiles, MediaLimits, new_media_id
from server.media.kinds import (
    Kind,
)
from server.media.links import LinkSigner, derive_link_key
from server.media.upload import MultipartReader, boundary_of
from server.models import User
from server.settings import Settings
from server.storage.ports import MediaRepository, UserRepository
from server.storage.types import MediaRecord

log = logging.getLogger(__name__)

MEDIA_ID_RE = re.compile(r"\Am[0-9a-f]{32}\Z")
#: What a multipart body may carry beyond the file itself (boundaries, part headers, fields).
MULTIPART_SLACK = 64 * 1024
#: Message types that carry media, and the kind each needs.
MESSAGE_KINDS = {"image": Kind.IMAGE, "video": Kind.VIDEO, "audio": Kind.AUDIO, "file": Kind.FILE}
#: Served inline (a browser may show them in place); everything else is an attachment.
INLINE_KINDS = (Kind.IMAGE, Kind.AUDIO, Kind.VIDEO)

#: A messaging-service answer: may ``viewer`` see message ``message_id`` now?
MessageVisible = Callable[[User, int], Awaitable[bool]]


@dataclass(frozen=True)
class Download:
    """A checked download: which file to stream and how to label it."""

    record: MediaRecord
    variant: str
    path: Path
    mime_type: str
    filename: str
    inline: bool
    _keyring: KeyRing

    def open(self) -> BlobReader:
        """The decrypting reader (blocking: call it in a worker thread)."""
        return BlobReader(self.path, self._keyring, self.record.id, self.variant)


#: The uploader a quarantined file is re-homed to when its account is erased (evidence).
ERASED_PREFIX = "erased:"


class MediaService:
    """Uploads, links, downloads, export and erasure of media (see the module docstring)."""

    def __init__(
        self,
        repo: MediaRepository,
        users: UserRepository,
        keyring: KeyRing,
        signer: LinkSigner,
        *,
        root: Path,
        limits: MediaLimits,
        token_ttl: int,
        clock: Clock = SYSTEM_CLOCK,
        message_visible: MessageVisible | None = None,
        processing: int = 2,
        frame_interval: float = 5.0,
        max_frames: int = 12,
    ) -> None:
        self._repo = repo
        self._users = users
        self._keyring = keyring
        self._signer = signer
        self._root = root
        self.limits = limits
        self._ttl = token_ttl
        self._clock = clock
        self._message_visible = message_visible
        # Decoding and re-encoding images is CPU and memory heavy: a few at a time.
        self._processing = asyncio.Semaphore(processing)
        # Decoding for moderation (video frames) has its own few slots: a burst of uploads
        # does not hold up verdicts, nor verdicts the uploads.
        self._decoding = asyncio.Semaphore(processing)
        self._frame_interval = frame_interval
        self._max_frames = max(1, max_frames)
        self._files = MediaFiles(root, keyring, limits)
        self._files.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        # Uploads cut short by a crash left encrypted temp files: nothing can resume them.
        for stale in self._files.tmp.iterdir():
            stale.unlink(missing_ok=True)

    # ------------------------------------------------------------------ upload

    async def uploader(self, uid: str) -> User:
        """The user an API-key upload is made for; 404 if there is none."""
        user = await self._users.get_user(uid)
        if user is None or user.deleted_at:
            raise NotFound("user not found", {"uid": uid})
        return user

    async def upload(
        self,
        uploader: User,
        *,
        content_type: str,
        content_length: int | None,
        body: AsyncIterator[bytes],
        kind: Kind | None = None,
    ) -> MediaRecord:
        """Store the ``file`` part of a multipart body for ``uploader``; the new row.

        ``kind`` (else the part's declared type or its name's extension) picks the size
        limit and the allow-list. Raises ``TooLarge`` (413) as soon as the limit is passed
        (at once when ``content_length`` already says so), ``UnsupportedMedia`` (415) for
        content of another type, ``BadRequest`` for a malformed body. Nothing stays on disk
        from a refused upload.
        """
        boundary = boundary_of(content_type)
        limit = self.limits.for_kind(kind) if kind else self.limits.largest
        cap = limit + MULTIPART_SLACK  # the body also carries the multipart framing

        def too_large() -> TooLarge:
            return TooLarge(f"the file is larger than {limit} bytes", {"limit": limit})

        if content_length is not None and content_length > cap:
            raise too_large()
        media_id = new_media_id()
        incoming = Incoming(
            self._files.tmp_paths(media_id)[0], self._keyring, media_id, kind, self.limits
        )
        reader = MultipartReader(boundary, incoming.open)
        stored = False
        try:
            received = 0
            async for chunk in body:
                received += len(chunk)
                if received > cap:
                    raise too_large()
                if chunk:
                    await asyncio.to_thread(reader.feed, chunk)
            reader.finish()
            await asyncio.to_thread(incoming.close)
            async with self._processing:
                result = await asyncio.to_thread(self._files.process, media_id, incoming)
            record = MediaRecord(
                id=media_id,
                uploader=uploader.uid,
                kind=incoming.kind.value,
                mime_type=result.mime,
                name=result.name,
                size=result.size,
                kid=self._keyring.current,
                created_at=self._clock.now(),
                width=result.width,
                height=result.height,
                duration=result.duration,
                thumb_mime=result.thumb_mime,
                thumb_size=result.thumb_size,
            )
            await self._repo.add_media(record)
            stored = True
            return record
        finally:
            if not stored:
                incoming.discard()
                await asyncio.to_thread(self._files.remove_files, media_id)

    # ------------------------------------------------------------------ links and policy

    async def may_view(self, viewer: User, media: MediaRecord) -> bool:
        """Whether ``viewer`` may see ``media`` now: its uploader always; others only when
        it is attached to a message the messaging service says they may see. Deleted and
        server-banned users see nothing."""
        if viewer.deleted_at or viewer.banned:
            return False
        if media.uploader == viewer.uid:
            return True
        if media.attached_to is None or self._message_visible is None:
            return False
        return await self._message_visible(viewer, media.attached_to)

    def link(self, media_id: str, viewer: User, variant: str = "original") -> tuple[str, int]:
        """A signed link (root-relative URL) for ``viewer`` to fetch ``variant``, and its
        expiry. Does not check ``may_view``: callers issue links only to those who may."""
        exp = self._clock.now() + self._ttl
        token = self._signer.sign(media_id, variant, viewer.uid, viewer.account, exp)
        suffix = "/thumbnail" if variant == "thumbnail" else ""
        return f"/media/{media_id}{suffix}?token={token}", exp

    def describe(self, media: MediaRecord, viewer: User) -> dict[str, Any]:
        """The media object for ``viewer``: metadata, ``url`` and (if any) ``thumbnailUrl``."""
        url, exp = self.link(media.id, viewer)
        body = {**media.to_json(), "url": url, "urlExpiresAt": exp}
        if media.thumb_mime is not None:
            body["thumbnailUrl"] = self.link(media.id, viewer, "thumbnail")[0]
        return body

    async def get(self, viewer: User, media_id: str) -> dict[str, Any]:
        """The media object with fresh links; 404 unless ``viewer`` may see it."""
        media = await self._repo.get_media(media_id) if MEDIA_ID_RE.fullmatch(media_id) else None
        if media is None or not await self.may_view(viewer, media):
            raise NotFound("media not found", {"mediaId": media_id})
        refuse_quarantined(media)
        return self.describe(media, viewer)

    async def attachment(self, media_id: str, viewer: User) -> dict[str, Any] | None:
        """The ``attachment`` object of a message for ``viewer`` (``url`` issued to them), or
        None when the media is gone or they may not see it."""
        media = await self._repo.get_media(media_id)
        if media is None or not await self.may_view(viewer, media):
            return None
        return self.describe(media, viewer)

    async def attachments(
        self, media_id: str, viewers: Sequence[User]
    ) -> dict[str, dict[str, Any]]:
        """The ``attachment`` object of a message for each of ``viewers`` (by uid), ``url``
        signed for each: one read, then one signature per viewer. The caller has checked
        that they may see the message; empty when the media is gone."""
        media = await self._repo.get_media(media_id)
        if media is None:
            return {}
        return {v.uid: self.describe(media, v) for v in viewers}

    async def open_download(self, media_id: str, variant: str, token: str | None) -> Download:
        """Check a download link; what to stream.

        401 without a token or with a malformed, tampered, expired or foreign one (another
        file's, another variant's, an erased account's); 403 when the viewer named in a
        valid token may no longer see the media; 404 for an unknown id.
        """
        if not MEDIA_ID_RE.fullmatch(media_id):
            raise NotFound("media not found")
        if not token:
            raise AuthRequired("this media link needs its ?token=")
        claims = self._signer.parse(token)
        if claims is None:
            raise AuthInvalid("malformed media token", {"reason": "malformed"})
        viewer = await self._users.get_user(claims.viewer)
        # Unknown viewers are checked against a random account so the answer takes as long.
        account = viewer.account if viewer is not None else secrets.token_hex(8)
        if not self._signer.check(claims, media_id, variant, account) or viewer is None:
            raise AuthInvalid("invalid media token", {"reason": "signature"})
        if claims.exp < self._clock.now():
            raise AuthInvalid("the media link has expired", {"reason": "expired"})
        media = await self._repo.get_media(media_id)
        if media is None:
            raise NotFound("media not found")
        refuse_quarantined(media)
        if not await self.may_view(viewer, media):
            raise Forbidden("this media is not available to you")
        if variant == "thumbnail":
            if media.thumb_mime is None:
                raise NotFound("this media has no thumbnail")
            path, mime = self._files.thumb_path(media_id), media.thumb_mime
            filename = f"{media.name.rsplit('.', 1)[0]}-thumbnail.{mime.split('/')[1]}"
            inline = True
        else:
            path, mime, filename = self._files.blob_path(media_id), media.mime_type, media.name
            inline = Kind(media.kind) in INLINE_KINDS
        return Download(media, variant, path, mime, filename, inline, self._keyring)

    # ------------------------------------------------------------------ sending (the integration)

    async def resolve_for_send(
        self, sender: str, media_id: str, message_type: str
    ) -> dict[str, Any]:
        """The stored ``attachment`` (no ``url``) for a ``message.send`` of ``message_type``
        with ``media_id``: the sender's own upload, of the matching kind, not yet carried by
        another message. 404 for an unknown or foreign id, 400 for a kind mismatch."""
        media = await self._repo.get_media(media_id) if MEDIA_ID_RE.fullmatch(media_id) else None
        if media is None or media.uploader != sender:
            raise NotFound("media not found", {"mediaId": media_id})
        kind = MESSAGE_KINDS.get(message_type)
        if kind is None or (kind is not Kind.FILE and media.kind != kind.value):
            raise BadRequest(
                f"a {message_type} message cannot carry {media.kind} media",
                {"mediaId": media_id, "kind": media.kind},
            )
        if media.attached_to is not None:
            raise Conflict("this media is already attached to a message", {"mediaId": media_id})
        return {
            "mediaId": media.id,
            "name": media.name,
            "mimeType": media.mime_type,
            "size": media.size,
        }

    async def claim(self, sender: str, media_id: str, message_id: int) -> None:
        """Record that message ``message_id`` carries the media (after it is stored);
        idempotent for the same message. 409 if another message carries it already."""
        if not await self._repo.attach_media(media_id, sender, message_id):
            raise Conflict("this media is already attached to a message", {"mediaId": media_id})

    # ------------------------------------------------------------------ moderation

    def content(self, attachment: Mapping[str, Any]) -> MediaContent | None:
        """What moderation may look at of a message's ``attachment`` (decoded lazily, once),
        or None when it names no media."""
        media_id = attachment.get("mediaId")
        if not isinstance(media_id, str) or not MEDIA_ID_RE.fullmatch(media_id):
            return None
        kind = str(attachment.get("kind") or _kind_of(str(attachment.get("mimeType", ""))))
        return _StoredContent(self, media_id, kind)

    async def frames_of(self, media_id: str) -> list[Frame]:
        """The frames the image detectors look at (see ``server.media.frames``): decrypted
        in memory, decoded in a worker thread. Raises ``FramesUnavailable`` when the media
        is gone or cannot be decoded."""
        media = await self._repo.get_media(media_id)
        if media is None:
            raise frames.FramesUnavailable("the media is gone")
        kind = Kind(media.kind)
        if kind not in (Kind.IMAGE, Kind.VIDEO):
            return []
        async with self._decoding:
            return await asyncio.to_thread(self._decode_frames, media_id, kind)

    def _decode_frames(self, media_id: str, kind: Kind) -> list[Frame]:
        path = self._files.blob_path(media_id)
        with BlobReader(path, self._keyring, media_id, "original") as raw:
            source = io.BufferedReader(raw, 256 * 1024)
            if kind is Kind.IMAGE:
                try:
                    return frames.image_frames(source, self._max_frames)
                except Exception as exc:
                    raise frames.FramesUnavailable(
                        f"the image could not be decoded: {exc}"
                    ) from None
            return frames.video_frames(source, self._frame_interval, self._max_frames)

    # ------------------------------------------------------------------ quarantine

    async def record(self, media_id: str) -> MediaRecord | None:
        """The media row, or None (also for a malformed id)."""
        return await self._repo.get_media(media_id) if MEDIA_ID_RE.fullmatch(media_id) else None

    async def quarantine(self, media_id: str) -> bool:
        """Mark the media quarantined (never served again; the encrypted files stay).
        False when it is gone or already quarantined."""
        return await self._repo.quarantine_media(media_id, self._clock.now())

    async def remove_files(self, media_ids: Sequence[str]) -> None:
        """Remove the encrypted files of uploads whose rows are gone (the retention job)."""
        for media_id in media_ids:
            if MEDIA_ID_RE.fullmatch(media_id):
                await asyncio.to_thread(self._files.remove_files, media_id)

    async def release(self, media_id: str) -> bool:
        """Lift a quarantine: served again under the usual rules. False when it is gone or
        not quarantined."""
        return await self._repo.release_media(media_id)

    async def delete(self, media_id: str) -> MediaRecord:
        """Delete one upload (row, then blob and thumbnail); 404 when unknown."""
        media = await self.record(media_id)
        if media is None:
            raise NotFound("media not found", {"mediaId": media_id})
        await self._repo.delete_media([media.id])
        await asyncio.to_thread(self._files.remove_files, media.id)
        return media

    # ------------------------------------------------------------------ privacy

    async def export(self, uid: str) -> list[dict[str, Any]]:
        """Metadata of every file ``uid`` uploaded (for the GDPR export)."""
        return [
            {**m.to_json(), "attachedTo": m.attached_to} for m in await self._repo.media_of(uid)
        ]

    async def erase(self, uid: str) -> int:
        """Delete every file ``uid`` uploaded (rows, blobs, thumbnails), except quarantined
        evidence; how many were deleted.

        Rows go first: a crash in between leaves encrypted files no row names, never a row
        whose file is gone. A quarantined upload (a known-bad image list matched it) is kept
        as evidence, never served, re-homed to ``erased:<uid>`` (a name no account can take:
        ``:`` is outside the uid alphabet) so that a later account of the same uid neither
        exports nor erases it; only an admin's ``DELETE /media/{id}`` removes it.
        """
        media = await self._repo.media_of(uid)
        kept = [m.id for m in media if m.quarantined_at]
        for media_id in kept:
            await self._repo.retain_media(media_id, uid, f"{ERASED_PREFIX}{uid}")
        gone = [m.id for m in media if not m.quarantined_at]
        if gone:
            await self._repo.delete_media(gone)
        for media_id in gone:
            await asyncio.to_thread(self._files.remove_files, media_id)
        return len(gone)


def refuse_quarantined(media: MediaRecord) -> None:
    """403 with ``details.reason: quarantined`` for quarantined media, for everyone."""
    if media.quarantined_at:
        raise Forbidden(
            "this media is quarantined: it matched a known-bad image list",
            {"reason": "quarantined", "mediaId": media.id},
        )


def _kind_of(mime_type: str) -> str:
    top = mime_type.split("/", 1)[0]
    return top if top in ("image", "video", "audio") else "file"


class _StoredContent:
    """``MediaContent`` for one stored upload: frames decoded on first use, then kept (for
    the life of the one message view that holds it)."""

    def __init__(self, service: MediaService, media_id: str, kind: str) -> None:
        self.kind = kind
        self._service = service
        self._media_id = media_id
        self._lock = asyncio.Lock()
        self._frames: list[Frame] | None = None

    async def frames(self) -> Sequence[Frame]:
        async with self._lock:
            if self._frames is None:
                self._frames = await self._service.frames_of(self._media_id)
            return self._frames


def build_media_service(
    settings: Settings,
    repo: MediaRepository,
    users: UserRepository,
    keyring: KeyRing,
    jwt_secret: str,
    *,
    message_visible: MessageVisible | None = None,
) -> MediaService:
    """The media service as the settings configure it (for the composition root)."""
    return MediaService(
        repo,
        users,
        keyring,
        LinkSigner(derive_link_key(jwt_secret)),
        root=settings.data_dir / "media",
        limits=MediaLimits(
            image=settings.max_image_bytes,
            audio=settings.max_audio_bytes,
            video=settings.max_video_bytes,
            file=settings.max_file_bytes,
            max_pixels=settings.max_image_pixels,
        ),
        token_ttl=settings.media_token_ttl,
        message_visible=message_visible,
        frame_interval=settings.video_frame_interval,
        max_frames=settings.video_max_frames,
    )
