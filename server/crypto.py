"""AES-256-GCM envelope for data at rest: key ids, rotation, associated data.

Keys live in ``<data-dir>/keys.json`` (mode 0600) or come from ``PARLEY_ENCRYPTION_KEYS``
(the same JSON). They never enter the database: each sealed row stores only the id of the key
that sealed it, so rotation adds a key and makes it current while older rows stay readable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class CryptoError(Exception):
    """A sealed value could not be opened: wrong key, wrong associated data, or tampering."""


def write_private(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class KeyRing:
    """The set of data keys, one of them current. Immutable: rotation returns a new ring."""

    current: str
    keys: Mapping[str, bytes] = field(repr=False)  # never in a log line or traceback

    _ciphers: Mapping[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError("current key id is not in the key ring")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} is not 256 bits")
        # One cipher per key, set up once (the ring is immutable; AESGCM is safe to share).
        object.__setattr__(self, "_ciphers", {kid: AESGCM(k) for kid, k in self.keys.items()})

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt with the current key and a fresh random 96-bit nonce; returns (kid, blob)."""
        nonce = os.urandom(NONCE_BYTES)  # the OS CSPRNG, as secrets.token_bytes uses
        blob = nonce + self._ciphers[self.current].encrypt(nonce, plaintext, aad)
        return self.current, blob

    def open(self, kid: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob sealed under ``kid``; raises CryptoError if anything does not match."""
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise CryptoError(f"unknown key id {kid!r}")
        try:
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise CryptoError("authentication failed") from exc

    def rotated(self) -> KeyRing:
        """A ring with a new random current key; the old keys stay for reading."""
        kid = f"k{len(self.keys) + 1}-{secrets.token_hex(3)}"
        return KeyRing(kid, {**self.keys, kid: AESGCM.generate_key(bit_length=256)})

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode() for k, v in self.keys.items()}
        return json.dumps({"current": self.current, "keys": keys}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        raw = json.loads(text)
        return cls(raw["current"], {k: base64.b64decode(v) for k, v in raw["keys"].items()})

    @classmethod
    def generate(cls) -> KeyRing:
        return cls("k1", {"k1": AESGCM.generate_key(bit_length=256)})


def load_keyring(data_dir: Path, env: Mapping[str, str]) -> KeyRing:
    """The ring from the environment, else from the data dir, created there on first start."""
    from_env = env.get("PARLEY_ENCRYPTION_KEYS")
    if from_env:
        return KeyRing.from_json(from_env)
    path = data_dir / "keys.json"
    if path.exists():
        return KeyRing.from_json(path.read_text())
    ring = KeyRing.generate()
    write_private(path, ring.to_json())
    return ring


def rotate_keyring(data_dir: Path) -> KeyRing:
    """Add a new current key to ``keys.json``; rows sealed with older keys stay readable."""
    path = data_dir / "keys.json"
    ring = KeyRing.from_json(path.read_text()) if path.exists() else KeyRing.generate()
    ring = ring.rotated()
    write_private(path, ring.to_json())
    return ring
