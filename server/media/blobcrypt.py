"""The at-rest format of media files: AES-256-GCM in 64 KiB chunks, STREAM-style.

A file is a header and a sequence of chunks::

    header  = b"PMB1" | len(kid) (1 byte) | kid (ASCII) | salt (32 bytes) | prefix (7 bytes)
    chunk i = AES-256-GCM(file_key, nonce_i, plaintext_i, aad) = ciphertext_i | tag (16 bytes)

- ``file_key = HKDF-SHA256(ikm=keyring[kid], salt, info="parley-media-v1|<media id>|<variant>")``:
  a fresh key per file (a random 256-bit salt), so nonces can never repeat across files, and
  a file decrypts only under the media id and variant it was written for.
- ``nonce_i = prefix | i (4 bytes, big-endian) | last (1 byte: 1 on the final chunk, else 0)``:
  chunks cannot be reordered, dropped from the middle, or the file truncated at a chunk
  boundary (the new final chunk was sealed with ``last = 0`` and fails), nor appended to.
- ``aad = "parley:media:v1:<media id>:<variant>"`` also binds every chunk to its file.
- Every plaintext chunk is ``CHUNK`` bytes except the final one (0..CHUNK bytes; an empty
  file is one empty final chunk), so byte ``p`` of the plaintext lies in chunk ``p // CHUNK``
  and a range is read by decrypting only the chunks it touches.

The key id names a key of the data keyring (``server.crypto``): rotation adds a key, new
files use it, old files keep naming theirs. Writers and readers are synchronous (they run in
a worker thread) and hold at most one chunk of plaintext.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from server.crypto import CryptoError, KeyRing

MAGIC = b"PMB1"
CHUNK = 64 * 1024
TAG = 16
SALT = 32
PREFIX = 7


def _file_key(key: bytes, salt: bytes, media_id: str, variant: str) -> AESGCM:
    info = f"parley-media-v1|{media_id}|{variant}".encode()
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info)
    return AESGCM(hkdf.derive(key))


def _aad(media_id: str, variant: str) -> bytes:
    return f"parley:media:v1:{media_id}:{variant}".encode()


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 2**32:
        raise CryptoError("media file too long for the chunk counter")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def header_size(kid: str) -> int:
    return len(MAGIC) + 1 + len(kid.encode()) + SALT + PREFIX


def encrypted_size(plain_size: int, kid: str) -> int:
    """The size on disk of a file holding ``plain_size`` plaintext bytes under ``kid``."""
    chunks = max(1, -(-plain_size // CHUNK))
    return header_size(kid) + plain_size + chunks * TAG


class BlobWriter:
    """Encrypts what is written to it into ``path``, one chunk at a time (a file-like sink).

    The file is created 0600 and exclusively (never over another). ``close()`` seals the final
    chunk and fsyncs; ``discard()`` (or leaving a ``with`` block by an exception) deletes it.
    At most one chunk of plaintext is held, in memory only.
    """

    def __init__(self, path: Path, keyring: KeyRing, media_id: str, variant: str) -> None:
        self.path = path
        self.kid = keyring.current
        key = keyring.keys[self.kid]
        salt = secrets.token_bytes(SALT)
        self._prefix = secrets.token_bytes(PREFIX)
        self._cipher = _file_key(key, salt, media_id, variant)
        self._aad = _aad(media_id, variant)
        kid = self.kid.encode()
        if len(kid) > 255:
            raise ValueError("key id too long")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._fh: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._fh.write(MAGIC + bytes([len(kid)]) + kid + salt + self._prefix)
        self._buf = bytearray()
        self._index = 0
        self.size = 0
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append plaintext; full chunks are encrypted and written at once."""
        if self.closed:
            raise ValueError("write to a closed blob")
        self._buf += data
        self.size += len(data)
        while len(self._buf) > CHUNK:  # keep >= 1 byte back: the final chunk is sealed last
            self._seal(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _seal(self, plain: bytes, *, last: bool) -> None:
        nonce = _nonce(self._prefix, self._index, last)
        self._fh.write(self._cipher.encrypt(nonce, plain, self._aad))
        self._index += 1

    def close(self) -> None:
        """Seal the final chunk, flush and fsync; the file is complete."""
        if self.closed:
            return
        self._seal(bytes(self._buf), last=True)
        self._buf = bytearray()
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.closed = True

    def discard(self) -> None:
        """Close and delete the file (an aborted upload)."""
        self._buf = bytearray()
        if not self._fh.closed:
            self._fh.close()
        self.closed = True
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()


class BlobReader(io.RawIOBase):
    """A seekable, read-only view of the plaintext of a blob, decrypting chunk by chunk.

    Pillow and PyAV read images and videos through it, and downloads read ranges from it;
    only the chunk under the read position is held in plaintext. A chunk that fails to
    authenticate raises ``CryptoError``; so does a file whose size does not match a whole
    chunk layout (a truncation).
    """

    def __init__(
        self, path: Path, keys: KeyRing | Mapping[str, bytes], media_id: str, variant: str
    ) -> None:
        super().__init__()
        ring = keys.keys if isinstance(keys, KeyRing) else keys
        self._fh = path.open("rb")
        try:
            head = self._fh.read(len(MAGIC) + 1)
            if len(head) != len(MAGIC) + 1 or head[: len(MAGIC)] != MAGIC:
                raise CryptoError("not a media blob")
            kid = self._fh.read(head[-1]).decode("ascii", "replace")
            salt = self._fh.read(SALT)
            self._prefix = self._fh.read(PREFIX)
            if len(salt) != SALT or len(self._prefix) != PREFIX:
                raise CryptoError("truncated media blob header")
            key = ring.get(kid)
            if key is None:
                raise CryptoError(f"unknown key id {kid!r}")
            self.kid = kid
            self._cipher = _file_key(key, salt, media_id, variant)
            self._aad = _aad(media_id, variant)
            self._start = self._fh.tell()
            body = os.fstat(self._fh.fileno()).st_size - self._start
            self._chunks = max(1, -(-body // (CHUNK + TAG)))
            last = body - (self._chunks - 1) * (CHUNK + TAG) - TAG
            if last < 0 or (last == 0 and self._chunks > 1):
                raise CryptoError("truncated media blob")
            self.size = (self._chunks - 1) * CHUNK + last
        except BaseException:
            self._fh.close()
            raise
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        self._fh.seek(self._start + index * (CHUNK + TAG))
        sealed = self._fh.read(CHUNK + TAG)
        last = index == self._chunks - 1
        try:
            plain = self._cipher.decrypt(_nonce(self._prefix, index, last), sealed, self._aad)
        except InvalidTag as exc:
            raise CryptoError(f"media chunk {index} failed to authenticate") from exc
        self._cached = (index, plain)
        return plain

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Fill ``buffer`` as far as the plaintext goes (a full read, across chunks)."""
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            index, offset = divmod(self._pos, CHUNK)
            data = self._chunk(index)[offset : offset + len(view) - done]
            view[done : done + len(data)] = data
            done += len(data)
            self._pos += len(data)
        return done

    def read_chunk(self, limit: int) -> bytes:
        """Up to ``limit`` bytes from the position, never crossing a chunk (for streaming)."""
        if self._pos >= self.size or limit <= 0:
            return b""
        index, offset = divmod(self._pos, CHUNK)
        data = self._chunk(index)[offset : offset + limit]
        self._pos += len(data)
        return data

    def verify(self) -> None:
        """Authenticate every chunk (the final one with its flag): raises CryptoError if not."""
        for index in range(self._chunks):
            self._chunk(index)

    def close(self) -> None:
        self._cached = None
        self._fh.close()
        super().close()
