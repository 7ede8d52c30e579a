"""The rules the settings models share, defined once: integer ranges, booleans, http(s)
URLs, allow/block, unknown fields, masked secrets. Each raises ``BadRequest`` naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moderation.providers.guard import OnError
from moderation.rules import MAX_CONTEXT_WINDOW
from server.errors import BadRequest

#: How a stored secret is shown; sending it back keeps the stored one.
MASK = "********"


#: Integer fields: (lo, hi).
RANGES: dict[str, tuple[int, int]] = {
    "contextWindow": (0, MAX_CONTEXT_WINDOW),
    "timeoutMs": (50, 60_000),
    "maxConcurrency": (1, 1000),
    "breakerFailures": (1, 1000),
    "breakerResetMs": (100, 3_600_000),
    "maxAttempts": (1, 100),
    "backoffMs": (10, 3_600_000),
    "maxBackoffMs": (10, 86_400_000),
}
ACTIONS_ON_ERROR = tuple(e.value for e in OnError)


def int_field(obj: Mapping[str, Any], key: str, path: str) -> int:
    value = obj[key]
    lo, hi = RANGES[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequest(f"field '{path}' must be an integer in {lo}..{hi}", {"field": path})
    return value


def opt_int_field(obj: Mapping[str, Any], key: str, prefix: str) -> int | None:
    return int_field(obj, key, prefix + key) if key in obj else None


def opt_bool_field(obj: Mapping[str, Any], key: str, prefix: str) -> bool | None:
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, bool):
        path = prefix + key
        raise BadRequest(f"field '{path}' must be true or false", {"field": path})
    return value


def on_error_field(obj: Mapping[str, Any], prefix: str) -> str | None:
    if "actionOnError" not in obj:
        return None
    value = obj["actionOnError"]
    if value not in ACTIONS_ON_ERROR:
        path = prefix + "actionOnError"
        raise BadRequest(f"field '{path}' must be allow or block", {"field": path})
    return str(value)


def url_field(value: object, path: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BadRequest(f"field '{path}' must be an http(s) URL", {"field": path})
    return value


def known_fields(obj: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
    for key in obj:
        if key not in known:
            raise BadRequest(f"unknown field '{prefix}{key}'", {"field": prefix + key})


def secret_field(value: object, old: str | None, path: str) -> str | None:
    """A new secret; a masked or absent one keeps ``old``."""
    if value in (None, "", MASK):
        return old
    if not isinstance(value, str):
        raise BadRequest(f"field '{path}' must be a string", {"field": path})
    return value


def stored_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def put_set(out: dict[str, Any], key: str, value: object) -> None:
    if value is not None:
        out[key] = value
