"""What an upload becomes on disk: the file part counted, sniffed and encrypted as it arrives
(``Incoming``, in worker threads), then processed into its final encrypted files
(``MediaFiles.process``: images re-encoded without metadata and thumbnailed, video and audio
probed, a poster made), and where each file lives. ``MediaService`` (``service.py``) drives
an upload through these and owns the rows.

Files live under ``<data dir>/media``: ``<2 hex>/<mediaId>`` (the blob), ``<2 hex>/<mediaId>.thumb``
(thumbnail or video poster) and ``tmp/`` (uploads in progress), all in the encrypted format of
``blobcrypt``. No plaintext byte of an upload is ever written to disk.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from server.crypto import KeyRing
from server.errors import TooLarge, UnsupportedMedia
from server.media import images, video
from server.media.blobcrypt import BlobReader, BlobWriter
from server.media.kinds import (
    SNIFF_BYTES,
    Kind,
    TypeRefused,
    claimed_kind,
    detect,
    sanitize_name,
    with_extension,
)
from server.media.upload import FilePart


@dataclass(frozen=True)
class MediaLimits:
    """The largest upload per kind, in bytes."""

    image: int
    audio: int
    video: int
    file: int
    max_pixels: int

    def for_kind(self, kind: Kind) -> int:
        return int(getattr(self, kind.value))

    @property
    def largest(self) -> int:
        return max(self.image, self.audio, self.video, self.file)


def new_media_id() -> str:
    """A fresh media id: ``m`` + 128 random bits in hex (unguessable, path-safe)."""
    return "m" + secrets.token_hex(16)


class Incoming:
    """The file part of one upload: counts, sniffs and encrypts it into the temp file.

    Runs in worker threads (``MultipartReader.feed``); raises ``TooLarge`` the moment the
    kind's limit is passed and ``UnsupportedMedia`` as soon as the first bytes show a type
    the kind does not allow.
    """

    def __init__(
        self, path: Path, keyring: KeyRing, media_id: str, hint: Kind | None, limits: MediaLimits
    ) -> None:
        self.path = path
        self._keyring = keyring
        self._media_id = media_id
        self._hint = hint
        self._limits = limits
        self.kind = Kind.FILE
        self.name = "file"
        self.limit = 0
        self.size = 0
        self.mime: str | None = None
        self._head = bytearray()
        self.writer: BlobWriter | None = None

    def open(self, part: FilePart) -> Incoming:
        self.name = sanitize_name(part.filename)
        self.kind = self._hint or claimed_kind(part.content_type, part.filename)
        self.limit = self._limits.for_kind(self.kind)
        self.writer = BlobWriter(self.path, self._keyring, self._media_id, "original")
        return self

    def write(self, data: bytes) -> int:
        assert self.writer is not None
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(
                f"{self.kind.value} uploads are limited to {self.limit} bytes",
                {"limit": self.limit, "kind": self.kind.value},
            )
        if self.mime is None:
            self._head += data[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._sniff()
        self.writer.write(data)
        return len(data)

    def _sniff(self) -> None:
        try:
            self.mime = detect(bytes(self._head), self.kind)
        except TypeRefused as exc:
            raise UnsupportedMedia(
                str(exc), {"kind": self.kind.value, "detected": exc.detected}
            ) from None
        self._head = bytearray()

    def close(self) -> None:
        """The part is complete: sniff a short file, seal the final chunk."""
        if self.mime is None:
            self._sniff()
        assert self.writer is not None
        self.writer.close()

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.discard()


@dataclass(frozen=True)
class Processed:
    """What processing made of an upload: the row's file fields."""

    mime: str
    name: str
    size: int
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    thumb_mime: str | None = None
    thumb_size: int = 0


class MediaFiles:
    """The media directory: where each file lives, and an upload processed into its files."""

    def __init__(self, root: Path, keyring: KeyRing, limits: MediaLimits) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self._keyring = keyring
        self._limits = limits

    def blob_path(self, media_id: str) -> Path:
        return self.root / media_id[1:3] / media_id

    def thumb_path(self, media_id: str) -> Path:
        return self.root / media_id[1:3] / f"{media_id}.thumb"

    def tmp_paths(self, media_id: str) -> tuple[Path, Path, Path]:
        return (
            self.tmp / f"{media_id}.upload",
            self.tmp / f"{media_id}.out",
            self.tmp / f"{media_id}.thumb",
        )

    def remove_files(self, media_id: str) -> None:
        for path in (*self.tmp_paths(media_id), self.blob_path(media_id)):
            path.unlink(missing_ok=True)
        self.thumb_path(media_id).unlink(missing_ok=True)

    def process(self, media_id: str, incoming: Incoming) -> Processed:
        """Process a received upload into its final files (worker thread)."""
        assert incoming.mime is not None
        upload, out, thumb = self.tmp_paths(media_id)
        final = self.blob_path(media_id)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        stored = Processed(incoming.mime, incoming.name, incoming.size)
        if incoming.kind is Kind.IMAGE:
            stored = self._image(media_id, incoming, upload, out, thumb)
            os.replace(out, final)
            upload.unlink()
        else:
            if incoming.kind in (Kind.VIDEO, Kind.AUDIO):
                stored = self._probe(media_id, incoming, upload, thumb)
            os.replace(upload, final)
        if stored.thumb_mime is not None:
            os.replace(thumb, self.thumb_path(media_id))
        fsync_dir(final.parent)
        return stored

    def _image(
        self, media_id: str, incoming: Incoming, upload: Path, out: Path, thumb: Path
    ) -> Processed:
        assert incoming.mime is not None
        try:
            with (
                BlobReader(upload, self._keyring, media_id, "original") as source,
                BlobWriter(out, self._keyring, media_id, "original") as sink,
            ):
                info, first = images.reencode(
                    source,  # type: ignore[arg-type]
                    incoming.mime,
                    sink,  # type: ignore[arg-type]
                    max_pixels=self._limits.max_pixels,
                )
            with BlobWriter(thumb, self._keyring, media_id, "thumbnail") as tsink:
                small = images.thumbnail(first, tsink)  # type: ignore[arg-type]
        except images.ImageRefused as exc:
            if exc.too_large:
                raise TooLarge(str(exc), {"maxPixels": self._limits.max_pixels}) from None
            raise UnsupportedMedia(str(exc), {"kind": "image"}) from None
        return Processed(
            incoming.mime,
            with_extension(incoming.name, incoming.mime),
            sink.size,
            info.width,
            info.height,
            thumb_mime=small.mime,
            thumb_size=tsink.size,
        )

    def _probe(self, media_id: str, incoming: Incoming, upload: Path, thumb: Path) -> Processed:
        assert incoming.mime is not None
        name = with_extension(incoming.name, incoming.mime)
        base = Processed(incoming.mime, name, incoming.size)
        try:
            with BlobReader(upload, self._keyring, media_id, "original") as source:
                found = video.probe(
                    source,  # type: ignore[arg-type]
                    want_poster=incoming.kind is Kind.VIDEO,
                )
        except video.ProbeFailed:
            raise UnsupportedMedia(
                f"the content is not playable {incoming.kind.value}",
                {"kind": incoming.kind.value, "detected": incoming.mime},
            ) from None
        if found is None:  # no PyAV: stored as uploaded, without poster or duration
            return base
        thumb_mime, thumb_size = None, 0
        if found.poster is not None:
            with BlobWriter(thumb, self._keyring, media_id, "thumbnail") as tsink:
                thumb_mime = images.thumbnail(found.poster, tsink).mime  # type: ignore[arg-type]
            thumb_size = tsink.size
        return Processed(
            incoming.mime,
            name,
            incoming.size,
            found.width,
            found.height,
            found.duration,
            thumb_mime,
            thumb_size,
        )


def fsync_dir(path: Path) -> None:
    """Make the renames into ``path`` durable (the row that names them commits next)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
