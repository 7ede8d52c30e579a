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
from enum import IntEnum, StrEnum
from pathlib import Path

import jwt

from server.crypto import write_private
from server.errors import AuthInvalid

ALGORITHM = "HS256"
#: The longest lifetime a token may claim (``exp - iat``), whoever minted it: a leaked
#: token with a far-future ``exp`` would otherwise never die.
MAX_TOKEN_LIFETIME = 366 * 24 * 3600


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


class StaffRole(IntEnum):
    """What a member of staff may do; each level includes the ones below it.

    viewer reads the queues and the audit log; moderator also decides (approve, disapprove,
    appeals, restrictions); admin also changes rules, lists, settings and operators.
    """

    VIEWER = 1
    MODERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: object) -> StaffRole:
        """``"viewer"``, ``"moderator"`` or ``"admin"``; ValueError otherwise."""
        if isinstance(value, str) and value.upper() in cls.__members__:
            return cls[value.upper()]
        raise ValueError("role must be viewer, moderator or admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the app's backend (API key) or a user with a role."""

    uid: str | None
    role: Role
    is_api_key: bool = False
    label: str | None = None  # how the audit log names a non-user actor
    staff: StaffRole | None = None  # an operator signed in to the dashboard (issue 17)
    #: A group moderator's groups (an operator limited to them); None: not limited.
    groups: frozenset[str] | None = None

    @property
    def is_staff(self) -> bool:
        """Moderators, admins, operators (of any role: the staff checks of the routes tier
        them) and the API key may use the moderation API and read any conversation."""
        return (
            self.is_api_key or self.staff is not None or self.role in (Role.MODERATOR, Role.ADMIN)
        )

    @property
    def is_admin(self) -> bool:
        return self.is_api_key or self.role is Role.ADMIN


API_KEY_PRINCIPAL = Principal(uid=None, role=Role.ADMIN, is_api_key=True)


def staff_level(principal: Principal) -> StaffRole | None:
    """What the moderation and admin APIs let ``principal`` do: the API key (the app's
    backend) and server admins are admins, server moderators are moderators, an operator has
    their own role; plain users have none."""
    if principal.is_api_key:
        return StaffRole.ADMIN
    if principal.staff is not None:
        return principal.staff
    return {Role.ADMIN: StaffRole.ADMIN, Role.MODERATOR: StaffRole.MODERATOR}.get(principal.role)


@dataclass(frozen=True)
class Secrets:
    """The app's API key and JWT signing secret."""

    api_key: str = field(repr=False)
    jwt_secret: str = field(repr=False)


def load_secrets(
    data_dir: Path, *, api_key: str | None, jwt_secret: str | None, mint_api_key: bool = True
) -> tuple[Secrets, bool]:
    """Secrets from settings, else from ``secrets.json`` (0600), generated on first start.

    An API key given in the settings is used as given and never written; one stored in the
    file is then removed, so the file never holds a key that does not work (a stale key would
    silently come back into force the day the setting is dropped). ``mint_api_key=False``
    (the ``token`` command, which only signs) generates no API key: the returned one is then a
    random value that is neither stored nor shown. Returns the secrets and whether the API key
    was generated now.
    """
    path = data_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    changed = generated = False
    if api_key:
        changed = stored.pop("api_key", None) is not None
    elif "api_key" not in stored and mint_api_key:
        stored["api_key"] = "pk_" + secrets.token_urlsafe(24)
        changed = generated = True
    if "jwt_secret" not in stored:
        stored["jwt_secret"] = secrets.token_urlsafe(48)
        changed = True
    if changed:
        write_private(path, json.dumps(stored, indent=2))
    return (
        Secrets(
            api_key=api_key or stored.get("api_key") or secrets.token_urlsafe(24),
            jwt_secret=jwt_secret or stored["jwt_secret"],
        ),
        generated,
    )


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: whose it is, when it was issued, and (for tokens this
    server minted) which incarnation of the account it was minted for."""

    uid: str
    issued_at: int
    account: str | None


class TokenAuthority:
    """Mints and verifies user tokens and checks API keys."""

    def __init__(self, secrets_: Secrets, *, audience: str, issuer: str, ttl: int) -> None:
        self._secrets = secrets_
        self._audience = audience
        self._issuer = issuer
        self._ttl = ttl

    def issue(self, uid: str, *, account: str = "", ttl: int | None = None) -> tuple[str, int]:
        """A signed token for ``uid``; returns the token and its expiry (Unix seconds).

        ``account`` is the user's account id: a token names the incarnation of the uid it
        was issued to, so it dies with that account (an erased uid may be created again).
        """
        now = int(time.time())
        exp = now + min(ttl if ttl is not None else self._ttl, MAX_TOKEN_LIFETIME)
        claims: dict[str, object] = {
            "sub": uid,
            "iat": now,
            "exp": exp,
            "aud": self._audience,
            "iss": self._issuer,
            "jti": uuid.uuid4().hex,
        }
        if account:
            claims["acc"] = account
        return jwt.encode(claims, self._secrets.jwt_secret, algorithm=ALGORITHM), exp

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; raises AuthInvalid with the reason otherwise.

        Beyond PyJWT's checks, ``exp`` and ``iat`` must be JSON numbers (PyJWT also takes
        numeric strings), and the token may not live longer than ``MAX_TOKEN_LIFETIME``.
        """
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
        sub, exp, iat, acc = (claims.get(k) for k in ("sub", "exp", "iat", "acc"))
        if not isinstance(sub, str) or not sub:
            raise AuthInvalid("invalid token: bad subject")
        for name, value in (("exp", exp), ("iat", iat)):
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise AuthInvalid(f"invalid token: '{name}' must be a number")
        assert isinstance(exp, int | float) and isinstance(iat, int | float)
        if exp - iat > MAX_TOKEN_LIFETIME:
            raise AuthInvalid("invalid token: lifetime longer than allowed")
        if iat > time.time() + 60:
            raise AuthInvalid("invalid token: issued in the future")
        if acc is not None and not isinstance(acc, str):
            raise AuthInvalid("invalid token: bad account")
        return TokenClaims(sub, int(iat), acc)

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
