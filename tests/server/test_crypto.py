from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.crypto import CryptoError, KeyRing, load_keyring, rotate_keyring


def test_seal_open_roundtrip_with_fresh_nonces() -> None:
    ring = KeyRing.generate()
    kid, a = ring.seal(b"secret", b"aad")
    _, b = ring.seal(b"secret", b"aad")
    assert a != b and b"secret" not in a
    assert ring.open(kid, a, b"aad") == b"secret"


@pytest.mark.parametrize("tamper", ["aad", "blob", "kid"])
def test_open_refuses_tampering(tamper: str) -> None:
    ring = KeyRing.generate()
    kid, blob = ring.seal(b"secret", b"message:1:conv")
    aad = b"message:2:conv" if tamper == "aad" else b"message:1:conv"
    if tamper == "blob":
        blob = blob[:-1] + bytes([blob[-1] ^ 1])
    if tamper == "kid":
        kid = "nope"
    with pytest.raises(CryptoError):
        ring.open(kid, blob, aad)


def test_rotation_keeps_old_rows_readable(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path, {})
    kid1, blob1 = ring.seal(b"old", b"a")
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    rotated = rotate_keyring(tmp_path)
    reloaded = load_keyring(tmp_path, {})
    assert reloaded.current == rotated.current != kid1
    assert reloaded.open(kid1, blob1, b"a") == b"old"
    kid2, blob2 = reloaded.seal(b"new", b"a")
    assert kid2 == rotated.current
    assert reloaded.open(kid2, blob2, b"a") == b"new"


def test_keys_from_env_win(tmp_path: Path) -> None:
    ring = KeyRing.generate()
    assert load_keyring(tmp_path, {"PARLEY_ENCRYPTION_KEYS": ring.to_json()}) == ring
    assert not (tmp_path / "keys.json").exists()


def test_key_ring_never_shows_its_keys() -> None:
    ring = KeyRing("k1", {"k1": os.urandom(32)}).rotated()
    text = repr(ring) + str(ring)
    assert ring.current in text
    for secret in ring.keys.values():
        assert repr(secret) not in text and secret.hex() not in text
