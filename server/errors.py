"""Errors of the server package.

The tree::

    ParleyError                      base, never raised itself
    ├── ClientError(code, message, details)   the client's fault; carries a wire code
    │   ├── BadRequest               ERR_BAD_REQUEST   400
    │   ├── UnknownType              ERR_UNKNOWN_TYPE  400
    │   ├── TooLarge                 ERR_TOO_LARGE     413
    │   ├── UnsupportedMedia         ERR_BAD_REQUEST   415
    │   ├── AuthRequired             ERR_AUTH_REQUIRED 401
    │   ├── AuthInvalid              ERR_AUTH_INVALID  401
    │   ├── Forbidden                ERR_FORBIDDEN     403
    │   ├── Blocked                  ERR_BLOCKED       403
    │   ├── NotAMember               ERR_NOT_A_MEMBER  403
    │   ├── Banned                   ERR_BANNED        403
    │   ├── NotFound                 ERR_NOT_FOUND     404
    │   ├── Conflict                 ERR_CONFLICT      409
    │   ├── RateLimited              ERR_RATE_LIMITED  429 (details.retryAfterMs)
    │   └── StorageUnavailable       ERR_INTERNAL      500 (the database is unreachable for
    │                                now: nothing was stored, retry; details.retryable)
    ├── InternalError                ERR_INTERNAL      500, details never leak
    └── MissingKeys(reason, source, kids)  start refused: the data keys are not all there

Only ``ClientError`` subclasses map to an ``error`` frame or an HTTP status; anything else
that escapes a handler is logged and answered as ``ERR_INTERNAL``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class ParleyError(Exception):
    """Base of every error this package raises on purpose."""


class ClientError(ParleyError):
    """An error the client caused; carries the wire ``code`` and an HTTP status."""

    code: ClassVar[str] = "ERR_BAD_REQUEST"
    status: ClassVar[int] = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_json(self) -> dict[str, Any]:
        """The ``{"code", "message", "details"}`` body of PROTOCOL.md."""
        return {"code": self.code, "message": self.message, "details": self.details}


class BadRequest(ClientError):
    code = "ERR_BAD_REQUEST"
    status = 400


class UnknownType(ClientError):
    code = "ERR_UNKNOWN_TYPE"
    status = 400


class TooLarge(ClientError):
    code = "ERR_TOO_LARGE"
    status = 413


class UnsupportedMedia(ClientError):
    code = "ERR_BAD_REQUEST"
    status = 415


class AuthRequired(ClientError):
    code = "ERR_AUTH_REQUIRED"
    status = 401


class AuthInvalid(ClientError):
    code = "ERR_AUTH_INVALID"
    status = 401


class Forbidden(ClientError):
    code = "ERR_FORBIDDEN"
    status = 403


class Blocked(ClientError):
    code = "ERR_BLOCKED"
    status = 403


class NotAMember(ClientError):
    code = "ERR_NOT_A_MEMBER"
    status = 403


class Banned(ClientError):
    code = "ERR_BANNED"
    status = 403


class NotFound(ClientError):
    code = "ERR_NOT_FOUND"
    status = 404


class Conflict(ClientError):
    code = "ERR_CONFLICT"
    status = 409


class RateLimited(ClientError):
    code = "ERR_RATE_LIMITED"
    status = 429

    def __init__(self, retry_after_ms: int) -> None:
        super().__init__("rate limit exceeded", {"retryAfterMs": retry_after_ms})
        self.retry_after_ms = retry_after_ms


class StorageUnavailable(ClientError):
    """The database cannot be reached for now (a restart, a failover): nothing was stored and
    the request may be retried as it is (a send with its ``muid`` is stored once)."""

    code = "ERR_INTERNAL"
    status = 500

    def __init__(self) -> None:
        super().__init__(
            "the database is unavailable for now; nothing was stored, retry shortly",
            {"retryable": True},
        )


class InternalError(ParleyError):
    """A server fault; the client only ever sees ``ERR_INTERNAL``."""

    code: ClassVar[str] = "ERR_INTERNAL"
    status: ClassVar[int] = 500


class MissingKeys(ParleyError):
    """The server refuses to start: data keys the database needs are not available.

    Raised before anything is served when ``keys.json`` (or ``PARLEY_ENCRYPTION_KEYS``) cannot
    be read, lacks keys that sealed rows name, or is absent while the database holds data.
    ``kids`` are the missing key ids (empty when none can be named), ``source`` where to
    restore the keys. ``parley`` prints the message and exits with status 2.
    """

    def __init__(self, reason: str, *, source: str, kids: Iterable[str] = ()) -> None:
        self.reason = reason
        self.source = source
        self.kids = tuple(sorted(kids))
        named = f" (missing key ids: {', '.join(self.kids)})" if self.kids else ""
        super().__init__(
            f"{reason}{named}. Restore the keyring (keys.json from a backup) to {source},"
            " then try again."
        )
