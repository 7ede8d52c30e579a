"""JWT issue/verify with a pinned algorithm, API keys, and roles.

Tokens are HS256 JWTs signed with the app's secret, carrying ``sub`` (uid), ``exp``, ``iat``,
``aud``, ``iss`` and ``jti``. Verification pins the algorithm list (so ``alg: none`` and
algorithm-confusion tokens fail) and requires ``exp``, ``iat``, ``sub``, ``aud`` and ``iss``.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import jwt

from server.crypto import write_private
from server.errors import AuthInvalid

ALGORITHM = "HS256"


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the app's backend (API key) or a user with a role."""

    uid: str | None
    role: Role
    is_api_key: bool = False
    label: str | None = None  # how the audit log names a non-user actor

    @property
    def is_staff(self) -> bool:
        """Moderators, admins and the API key may use the moderation API."""
        return self.is_api_key or self.role in (Role.MODERATOR, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.is_api_key or self.role is Role.ADMIN


API_KEY_PRINCIPAL = Principal(uid=None, role=Role.ADMIN, is_api_key=True)


@dataclass(frozen=True)
class Secrets:
    """The app's API key and JWT signing secret."""

    api_key: str = field(repr=False)
    jwt_secret: str = field(repr=False)


def load_secrets(
    data_dir: Path, *, api_key: str | None, jwt_secret: str | None
) -> tuple[Secrets, bool]:
    """Secrets from settings, else from ``secrets.json`` (0600), generated on first start.

    Returns the secrets and whether the API key was generated now (to print it once).
    """
    path = data_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    generated = False
    if "api_key" not in stored:
        stored["api_key"] = "pk_" + secrets.token_urlsafe(24)
        generated = True
    if "jwt_secret" not in stored:
        stored["jwt_secret"] = secrets.token_urlsafe(48)
        generated = True
    if generated:
        write_private(path, json.dumps(stored, indent=2))
    return (
        Secrets(
            api_key=api_key or stored["api_key"], jwt_secret=jwt_secret or stored["jwt_secret"]
        ),
        generated and api_key is None,
    )


class TokenAuthority:
    """Mints and verifies user tokens and checks API keys."""

    def __init__(self, secrets_: Secrets, *, audience: str, issuer: str, ttl: int) -> None:
        self._secrets = secrets_
        self._audience = audience
        self._issuer = issuer
        self._ttl = ttl

    def issue(self, uid: str, *, ttl: int | None = None) -> tuple[str, int]:
        """A signed token for ``uid``; returns the token and its expiry (Unix seconds)."""
        now = int(time.time())
        exp = now + (ttl if ttl is not None else self._ttl)
        claims = {
            "sub": uid,
            "iat": now,
            "exp": exp,
            "aud": self._audience,
            "iss": self._issuer,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secrets.jwt_secret, algorithm=ALGORITHM), exp

    def verify(self, token: str) -> str:
        """The uid of a valid token; raises AuthInvalid with the reason otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._secrets.jwt_secret,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthInvalid("token expired") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthInvalid(f"invalid token: {exc}") from exc
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthInvalid("invalid token: bad subject")
        return sub

    def check_api_key(self, presented: str) -> bool:
        """Constant-time comparison with the configured API key."""
        return hmac.compare_digest(presented.encode(), self._secrets.api_key.encode())


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
