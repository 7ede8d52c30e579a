"""AES-256-GCM envelope for data at rest: key ids, rotation, associated data.

Keys live in ``<data-dir>/keys.json`` (mode 0600) or come from ``PARLEY_ENCRYPTION_KEYS``
(the same JSON). They never enter the database: each sealed row stores only the id of the key
that sealed it, so rotation adds a key and makes it current while older rows stay readable.

Key ids are random (``k`` + 16 hex digits), never reused: a keyring minted by mistake can never
pass for the one that sealed existing rows. ``load_keyring`` refuses (``MissingKeys``) rather
than mint a keyring over existing data or start without a key the database needs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.errors import MissingKeys

NONCE_BYTES = 12
KEY_BYTES = 32
ENV_KEYS = "PARLEY_ENCRYPTION_KEYS"
KEYRING_SHAPE = '{"current": "<key id>", "keys": {"<key id>": "<base64 of 32 bytes>", ...}}'


class CryptoError(Exception):
    """A sealed value could not be opened: wrong key, wrong associated data, or tampering."""


def write_private(path: Path, text: str) -> None:
    """Write a secret file atomically, readable by its owner only (0600).

    A missing parent directory is created 0700 (the data dir).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def new_key_id() -> str:
    """A fresh random key id, ``k`` + 16 hex digits (64 bits: never reused by chance)."""
    return "k" + secrets.token_hex(8)


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
        kid = new_key_id()
        while kid in self.keys:  # 64 random bits: never in practice, but never reuse an id
            kid = new_key_id()
        return KeyRing(kid, {**self.keys, kid: AESGCM.generate_key(bit_length=256)})

    def missing(self, kids: Collection[str]) -> list[str]:
        """The ids among ``kids`` this ring has no key for, sorted."""
        return sorted(set(kids) - self.keys.keys())

    def to_json(self) -> str:
        keys = {k: base64.b64encode(v).decode() for k, v in self.keys.items()}
        return json.dumps({"current": self.current, "keys": keys}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> KeyRing:
        """Parse a ring; raises ValueError saying what is wrong (never quoting key material)."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from None
        if not (
            isinstance(raw, dict)
            and isinstance(raw.get("current"), str)
            and isinstance(raw.get("keys"), dict)
            and raw["keys"]
            and all(isinstance(k, str) and isinstance(v, str) for k, v in raw["keys"].items())
        ):
            raise ValueError(f"not a keyring, expected {KEYRING_SHAPE}")
        keys: dict[str, bytes] = {}
        for kid, value in raw["keys"].items():
            try:
                keys[kid] = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise ValueError(f"key {kid!r} is not valid base64") from None
            if len(keys[kid]) != KEY_BYTES:
                raise ValueError(f"key {kid!r} is {len(keys[kid])} bytes, not {KEY_BYTES}")
        if raw["current"] not in keys:
            raise ValueError(f"the current key {raw['current']!r} is not among the keys")
        return cls(raw["current"], keys)

    @classmethod
    def generate(cls) -> KeyRing:
        """A new ring with one random key under a random id."""
        kid = new_key_id()
        return cls(kid, {kid: AESGCM.generate_key(bit_length=256)})


def load_keyring(
    data_dir: Path,
    env: Mapping[str, str],
    *,
    in_use: Collection[str] = (),
    has_data: bool = False,
) -> KeyRing:
    """The ring from the environment, else from the data dir, minted there on first start.

    ``in_use`` are the key ids the database's sealed rows name and ``has_data`` whether a
    database with anything in it exists. Raises ``MissingKeys`` when the ring cannot be read,
    lacks a key in use, or is absent while data exists: a keyring is never minted over existing
    data (rows sealed with it would be lost the day the original ``keys.json`` is restored).
    """
    path = data_dir / "keys.json"
    from_env = env.get(ENV_KEYS)
    if from_env:
        source = where = ENV_KEYS
        ring = _parse(from_env, source, where)
    elif path.exists():
        source, where = str(path), f"{path} (or {ENV_KEYS})"
        try:
            text = path.read_text()
        except OSError as exc:
            raise MissingKeys(f"cannot read {path}: {exc.strerror}", source=where) from None
        ring = _parse(text, source, where)
    elif in_use or has_data:
        raise MissingKeys(
            f"no keyring: {path} does not exist and {ENV_KEYS} is not set, but the database"
            " holds data; Parley never mints a new keyring over existing data",
            source=f"{path} (or {ENV_KEYS})",
            kids=in_use,
        )
    else:
        ring = KeyRing.generate()
        write_private(path, ring.to_json())
        return ring
    if missing := ring.missing(in_use):
        raise MissingKeys(
            f"the keyring from {source} lacks keys that rows in the database were sealed with",
            source=where,
            kids=missing,
        )
    return ring


def _parse(text: str, name: str, source: str) -> KeyRing:
    try:
        return KeyRing.from_json(text)
    except ValueError as exc:
        raise MissingKeys(f"the keyring in {name} is unreadable: {exc}", source=source) from None


def rotate_keyring(data_dir: Path) -> KeyRing:
    """Add a new current key to ``keys.json``; rows sealed with older keys stay readable.

    Raises ``MissingKeys`` when ``keys.json`` is absent or unreadable: rotating then would
    mint a keyring without the keys the database needs.
    """
    path = data_dir / "keys.json"
    if not path.exists():
        raise MissingKeys(f"no keyring to rotate: {path} does not exist", source=str(path))
    ring = _parse(path.read_text(), str(path), str(path)).rotated()
    write_private(path, ring.to_json())
    return ring
