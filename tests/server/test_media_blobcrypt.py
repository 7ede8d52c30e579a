"""The chunked at-rest format of media files (server/media/blobcrypt.py)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from server.crypto import CryptoError, KeyRing
from server.media.blobcrypt import CHUNK, TAG, BlobReader, BlobWriter, encrypted_size

MID = "m" + "ab" * 16


def write(path: Path, ring: KeyRing, data: bytes, *, piece: int = 10_000) -> BlobWriter:
    with BlobWriter(path, ring, MID, "original") as w:
        for i in range(0, len(data), piece):
            w.write(data[i : i + piece])
    return w


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_round_trip_and_size(tmp_path: Path, size: int) -> None:
    ring = KeyRing.generate()
    data = os.urandom(size)
    path = tmp_path / "b"
    w = write(path, ring, data)
    assert w.size == size
    assert path.stat().st_size == encrypted_size(size, ring.current)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with BlobReader(path, ring, MID, "original") as r:
        assert r.size == size
        assert r.read() == data
        r.verify()


def test_random_access(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    data = os.urandom(5 * CHUNK + 123)
    write(tmp_path / "b", ring, data)
    with BlobReader(tmp_path / "b", ring, MID, "original") as r:
        for start, length in [(0, 10), (CHUNK - 5, 10), (2 * CHUNK, CHUNK), (len(data) - 3, 50)]:
            r.seek(start)
            assert r.read(length) == data[start : start + length]
        r.seek(-4, io.SEEK_END)
        assert r.read() == data[-4:]


def test_no_plaintext_on_disk(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    canary = b"CANARY-" + os.urandom(8).hex().encode()
    write(tmp_path / "b", ring, canary * 1000)
    assert canary not in (tmp_path / "b").read_bytes()


def test_old_key_stays_readable_after_rotation(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    write(tmp_path / "b", ring, b"hello")
    rotated = ring.rotated()
    with BlobReader(tmp_path / "b", rotated, MID, "original") as r:
        assert r.kid == ring.current
        assert r.read() == b"hello"
    with pytest.raises(CryptoError, match="unknown key id"):
        BlobReader(tmp_path / "b", KeyRing.generate(), MID, "original")


def _tamper(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1
    path.write_bytes(bytes(raw))


def test_wrong_media_id_or_variant_fails(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    write(tmp_path / "b", ring, b"x" * 100)
    for mid, variant in [("m" + "cd" * 16, "original"), (MID, "thumbnail")]:
        with (
            BlobReader(tmp_path / "b", ring, mid, variant) as r,
            pytest.raises(CryptoError),
        ):
            r.read()


def test_tampering_truncation_reordering_and_swaps_fail(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    data = os.urandom(3 * CHUNK + 10)
    path = tmp_path / "b"
    write(path, ring, data)
    pristine = path.read_bytes()
    header = len(pristine) - (3 * (CHUNK + TAG) + 10 + TAG)

    _tamper(path, header + CHUNK + 5)  # a byte of chunk 1
    with BlobReader(path, ring, MID, "original") as r, pytest.raises(CryptoError):
        r.verify()

    path.write_bytes(pristine[: header + 2 * (CHUNK + TAG)])  # cut at a chunk boundary
    with BlobReader(path, ring, MID, "original") as r, pytest.raises(CryptoError):
        r.verify()

    c = [pristine[header + i * (CHUNK + TAG) : header + (i + 1) * (CHUNK + TAG)] for i in range(3)]
    path.write_bytes(
        pristine[:header] + c[1] + c[0] + c[2] + pristine[header + 3 * (CHUNK + TAG) :]
    )
    with BlobReader(path, ring, MID, "original") as r, pytest.raises(CryptoError):
        r.read(10)

    write(tmp_path / "other", ring, data)  # same content, another file: its chunks do not fit
    other = (tmp_path / "other").read_bytes()
    path.write_bytes(pristine[: header + CHUNK + TAG] + other[header + CHUNK + TAG :])
    with BlobReader(path, ring, MID, "original") as r, pytest.raises(CryptoError):
        r.verify()


def test_writer_refuses_to_overwrite_and_discard_removes(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    write(tmp_path / "b", ring, b"x")
    with pytest.raises(FileExistsError):
        BlobWriter(tmp_path / "b", ring, MID, "original")
    w = BlobWriter(tmp_path / "c", ring, MID, "original")
    w.write(b"partial")
    w.discard()
    assert not (tmp_path / "c").exists()
