from __future__ import annotations

import base64
import json
import os
import re
import stat
from pathlib import Path

import pytest

from server.crypto import CryptoError, KeyRing, load_keyring, rotate_keyring
from server.errors import MissingKeys

RANDOM_KID = re.compile(r"k[0-9a-f]{16}")


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


def test_key_ids_are_random_never_sequential() -> None:
    rings = [KeyRing.generate() for _ in range(3)]
    kids = [r.current for r in rings] + [rings[0].rotated().current]
    assert all(RANDOM_KID.fullmatch(k) for k in kids), kids
    assert len(set(kids)) == len(kids)  # a keyring minted again never reuses an id


def test_old_sequential_key_ids_keep_working(tmp_path: Path) -> None:
    old = KeyRing("k2-abcdef", {"k1": os.urandom(32), "k2-abcdef": os.urandom(32)})
    sealed = [old.seal(b"old", b"a"), KeyRing("k1", {"k1": old.keys["k1"]}).seal(b"older", b"a")]
    (tmp_path / "keys.json").write_text(old.to_json())
    ring = load_keyring(tmp_path, {}, in_use={"k1", "k2-abcdef"}, has_data=True)
    assert [ring.open(kid, blob, b"a") for kid, blob in sealed] == [b"old", b"older"]
    rotated = rotate_keyring(tmp_path)
    assert RANDOM_KID.fullmatch(rotated.current) and {"k1", "k2-abcdef"} < rotated.keys.keys()


def test_a_keyring_is_minted_only_where_there_is_no_data(tmp_path: Path) -> None:
    ring = load_keyring(tmp_path, {}, in_use=(), has_data=False)
    assert RANDOM_KID.fullmatch(ring.current)
    assert load_keyring(tmp_path, {}) == ring


@pytest.mark.parametrize(
    ("in_use", "has_data"), [({"kfeedfacefeedface"}, True), (set(), True)], ids=["rows", "db"]
)
def test_no_keyring_over_existing_data(tmp_path: Path, in_use: set[str], has_data: bool) -> None:
    with pytest.raises(MissingKeys) as err:
        load_keyring(tmp_path, {}, in_use=in_use, has_data=has_data)
    assert not (tmp_path / "keys.json").exists()  # nothing minted
    assert err.value.kids == tuple(in_use)
    assert str(tmp_path / "keys.json") in str(err.value)
    assert "PARLEY_ENCRYPTION_KEYS" in str(err.value)
    assert all(kid in str(err.value) for kid in in_use)


@pytest.mark.parametrize("from_env", [False, True], ids=["file", "env"])
def test_a_keyring_lacking_a_key_in_use_is_refused(tmp_path: Path, from_env: bool) -> None:
    ring = KeyRing.generate()
    env = {"PARLEY_ENCRYPTION_KEYS": ring.to_json()} if from_env else {}
    if not from_env:
        (tmp_path / "keys.json").write_text(ring.to_json())
    with pytest.raises(MissingKeys) as err:
        load_keyring(tmp_path, env, in_use={ring.current, "k1", "kfeedfacefeedface"})
    assert err.value.kids == ("k1", "kfeedfacefeedface")
    assert "k1, kfeedfacefeedface" in str(err.value)
    where = "PARLEY_ENCRYPTION_KEYS" if from_env else str(tmp_path / "keys.json")
    assert err.value.source.startswith(where)


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


GOOD_KEY = _b64(32)


CORRUPT = {
    "truncated": ('{"current": "k1", "keys": ', "not valid JSON"),
    "empty": ("", "not valid JSON"),
    "list": ('["k1"]', "not a keyring"),
    "no-keys": ('{"current": "k1", "keys": {}}', "not a keyring"),
    "not-text": ('{"current": "k1", "keys": {"k1": 7}}', "not a keyring"),
    "base64": ('{"current": "k1", "keys": {"k1": "not*base64"}}', "key 'k1' is not valid base64"),
    "length": (json.dumps({"current": "k1", "keys": {"k1": _b64(16)}}), "is 16 bytes, not 32"),
    "current": (json.dumps({"current": "k2", "keys": {"k1": GOOD_KEY}}), "current key 'k2' is"),
}


@pytest.mark.parametrize(
    ("from_env", "text", "reason"),
    [
        pytest.param(from_env, text, reason, id=f"{'env' if from_env else 'file'}-{name}")
        for from_env in (False, True)
        for name, (text, reason) in CORRUPT.items()
        if not (from_env and not text)  # an empty PARLEY_ENCRYPTION_KEYS means unset
    ],
)
def test_a_corrupt_keyring_gets_a_clear_message(
    tmp_path: Path, from_env: bool, text: str, reason: str
) -> None:
    path = tmp_path / "keys.json"
    env = {"PARLEY_ENCRYPTION_KEYS": text} if from_env else {}
    if not from_env:
        path.write_text(text)
    with pytest.raises(MissingKeys) as err:
        load_keyring(tmp_path, env)
    message = str(err.value)
    assert reason in message
    assert ("PARLEY_ENCRYPTION_KEYS" if from_env else str(path)) in message
    assert GOOD_KEY not in message  # never key material in a message
    assert path.exists() != from_env  # left alone, nothing minted


def test_rotation_needs_the_keyring(tmp_path: Path) -> None:
    with pytest.raises(MissingKeys, match="no keyring to rotate"):
        rotate_keyring(tmp_path)
    assert not (tmp_path / "keys.json").exists()
    (tmp_path / "keys.json").write_text("{")
    with pytest.raises(MissingKeys, match="not valid JSON"):
        rotate_keyring(tmp_path)
    assert (tmp_path / "keys.json").read_text() == "{"
