"""Operator (staff) credentials as pure functions: roles, argon2 password hashes, TOTP codes,
recovery codes, session tokens, CSRF tokens and the failed-login policy.

Operators are the people who sign in to the dashboard; they are not chat users. Nothing here
does I/O: ``services/operators.py`` stores what these functions make and checks what they
are given.

- Passwords: argon2id (argon2-cffi's ``PasswordHasher`` defaults: RFC 9106 low-memory
  profile), re-hashed on login when the parameters change.
- TOTP: RFC 6238 through pyotp, 30 s steps, one step of drift either way; a step once used
  is refused again (replay), so the caller stores the last step.
- Recovery codes: ten random codes shown once; only their SHA-256 is stored (they carry 50
  bits of randomness each, so a slow hash adds nothing), each works once.
- Sessions: 32 random bytes in an HttpOnly cookie; the database holds only their SHA-256.
- CSRF: the token is an HMAC of the session token under the server's secret, so it needs no
  storage and dies with the session; unsafe requests send it in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.auth import StaffRole

__all__ = ["StaffRole"]

#: The session cookie: ``__Host-`` makes the browser refuse it unless Secure, host-only and
#: for path ``/``.
SESSION_COOKIE = "__Host-parley_staff"
CSRF_HEADER = "x-csrf-token"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
RECOVERY_CODES = 10
#: The demo operators' password (``--demo``). It signs in nobody outside demo mode, so demo
#: accounts left in a data dir never open a production dashboard.
DEMO_PASSWORD = "parley-demo"
TOTP_ISSUER = "Parley"


def check_name(name: object) -> str:
    """An operator name: 1-64 of lowercase letters, digits, ``_ . -``; ValueError otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError("an operator name is 1-64 of a-z 0-9 _ . - (starting with a-z or 0-9)")
    return name


def check_password(password: object) -> str:
    """A password long enough to resist guessing; ValueError otherwise."""
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValueError(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


# ---------------------------------------------------------------------- passwords

_HASHER = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; about 50 ms and 64 MiB)."""
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such operator; spends the same time)."""
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


# ---------------------------------------------------------------------- TOTP


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, name: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans (as a QR code) or takes typed in."""
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, at: float, last_step: int) -> int | None:
    """The time step ``code`` is valid for at ``at`` (one step of drift either way), or None.

    A step at or before ``last_step`` (the last one accepted) is refused: a code seen once
    (shoulder-surfed, logged by a proxy) does not sign in again.
    """
    code = code.strip().replace(" ", "")
    if not re.fullmatch(r"[0-9]{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    step = int(at) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and hmac.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


# ---------------------------------------------------------------------- recovery codes


def new_recovery_codes(n: int = RECOVERY_CODES) -> list[str]:
    """``n`` codes like ``k3j9x-4mq2p`` (50 bits each), to be shown once."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    out = []
    for _ in range(n):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        out.append(f"{raw[:5]}-{raw[5:]}")
    return out


def hash_recovery(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace(" ", "").encode()).hexdigest()


def use_recovery(hashes: tuple[str, ...], code: str) -> tuple[str, ...] | None:
    """The stored hashes without the one ``code`` matches, or None if it matches none."""
    wanted = hash_recovery(code)
    for h in hashes:
        if hmac.compare_digest(h, wanted):
            return tuple(x for x in hashes if x != h)
    return None


# ---------------------------------------------------------------------- sessions and CSRF


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def session_id(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(secret: str, token: str) -> str:
    return hmac.new(secret.encode(), b"csrf:" + token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(csrf_token(secret, token), presented)


# ---------------------------------------------------------------------- failed logins


@dataclass(frozen=True)
class LoginPolicy:
    """How failed logins slow down and then lock an operator account.

    The first ``free`` consecutive failures cost nothing; after each further one the next
    attempt must wait ``delay * 2**(n - free - 1)`` seconds (capped at ``max_delay``),
    refused unchecked before then; at ``lock_after`` failures the account locks until an
    admin unlocks it (``parley operators unlock``, or a new password). A success resets
    the count.
    """

    free: int = 3
    delay: float = 2.0
    max_delay: float = 900.0
    lock_after: int = 10

    def wait(self, failures: int, last_failure_at: float, now: float) -> float:
        """Seconds still to wait before an attempt is checked (0: check it now)."""
        if failures <= self.free or self.delay <= 0:
            return 0.0
        pause = min(self.max_delay, self.delay * 2.0 ** (failures - self.free - 1))
        return max(0.0, last_failure_at + pause - now)
