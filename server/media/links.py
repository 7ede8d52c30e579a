"""Signed, expiring media links: one token per media file, variant and viewer.

A link is ``/media/<mediaId>?token=<token>`` (the thumbnail: ``/media/<mediaId>/thumbnail``)::

    token = "1." <exp> "." <viewer uid> "." base64url(HMAC-SHA256(link_key, message))
    message = "parley-media-link-v1\\n<mediaId>\\n<variant>\\n<viewer uid>\\n<account>\\n<exp>"

The media id and variant come from the path and the viewer's account id from the database,
so neither travels in the token but both are signed: a token opens only the file and
variant it was issued for, and dies with the viewer's account (an erased uid created again
gets a new account id). ``exp`` is Unix seconds. The signature is compared in constant time.
``link_key`` is derived from the JWT secret with HKDF (``derive_link_key``): replacing that
secret revokes every link along with every session token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "1"
VARIANTS = ("original", "thumbnail")
_TOKEN_RE = re.compile(r"\A1\.([0-9]{1,12})\.([A-Za-z0-9_-]{1,100})\.([A-Za-z0-9_-]{43})\Z")


def derive_link_key(jwt_secret: str) -> bytes:
    """The media link signing key: HKDF-SHA256 of the JWT secret, for this purpose only."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"parley media links v1")
    return hkdf.derive(jwt_secret.encode())


@dataclass(frozen=True)
class LinkClaims:
    """What a well-formed token says, before its signature is checked against an account."""

    viewer: str
    exp: int
    signature: bytes


def _message(media_id: str, variant: str, viewer: str, account: str, exp: int) -> bytes:
    return f"parley-media-link-v1\n{media_id}\n{variant}\n{viewer}\n{account}\n{exp}".encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class LinkSigner:
    """Signs and checks media tokens with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the link key must be at least 256 bits")
        self._key = key

    def _mac(self, media_id: str, variant: str, viewer: str, account: str, exp: int) -> bytes:
        message = _message(media_id, variant, viewer, account, exp)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def sign(self, media_id: str, variant: str, viewer: str, account: str, exp: int) -> str:
        """A token for ``viewer`` (with its account id) to fetch ``variant`` until ``exp``."""
        mac = self._mac(media_id, variant, viewer, account, exp)
        return f"{VERSION}.{exp}.{viewer}.{_b64(mac)}"

    @staticmethod
    def parse(token: str) -> LinkClaims | None:
        """The claims of a well-formed token, or None (nothing is trusted yet)."""
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        exp, viewer, sig = match.groups()
        return LinkClaims(viewer, int(exp), base64.urlsafe_b64decode(sig + "="))

    def check(self, claims: LinkClaims, media_id: str, variant: str, account: str) -> bool:
        """Whether the signature holds for this media id, variant and the viewer's account."""
        expected = self._mac(media_id, variant, claims.viewer, account, claims.exp)
        return hmac.compare_digest(expected, claims.signature)
