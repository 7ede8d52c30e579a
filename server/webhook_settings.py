"""The outgoing event webhooks' settings (``webhooks`` in the moderation settings): a frozen
model with one validator, the stored and the shown shape."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from server.errors import BadRequest
from server.settings_fields import (
    MASK,
    int_field,
    known_fields,
    secret_field,
    stored_int,
    url_field,
)

#: Outgoing webhook events a receiver may subscribe to (wire names, PROTOCOL.md).
EVENTS = (
    "message.disapproved",
    "message.flagged",
    "message.reported",
    "report.escalated",
    "message.review_required",
    "user.banned",
    "moderation.provider_failed",
    "media.quarantined",
    "media.released",
)
MAX_WEBHOOKS = 20


def _hook_id(url: str) -> str:
    return "wh-" + hashlib.sha256(url.encode()).hexdigest()[:10]


_HOOK_KEYS: tuple[str, ...] = ("id", "url", "secret", "events", "enabled", "timeoutMs")
_HOOK_KEYS += ("maxAttempts", "backoffMs", "maxBackoffMs")
_HOOK_DEFAULTS = {"timeoutMs": 5000, "maxAttempts": 8, "backoffMs": 1000, "maxBackoffMs": 600_000}


@dataclass(frozen=True)
class WebhookSettings:
    """One outgoing event webhook (a receiver of moderation events); times in milliseconds."""

    id: str
    url: str
    secret: str | None = field(repr=False)
    events: tuple[str, ...]
    enabled: bool = True
    timeout_ms: int = _HOOK_DEFAULTS["timeoutMs"]
    max_attempts: int = _HOOK_DEFAULTS["maxAttempts"]
    backoff_ms: int = _HOOK_DEFAULTS["backoffMs"]
    max_backoff_ms: int = _HOOK_DEFAULTS["maxBackoffMs"]

    @property
    def subscribed(self) -> frozenset[str]:
        """The events it receives (``*`` is every event)."""
        return frozenset(EVENTS) if "*" in self.events else frozenset(self.events)

    @property
    def timeout(self) -> float:
        return self.timeout_ms / 1000

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts: doubling, capped."""
        doubled: int = self.backoff_ms * 2 ** max(attempts - 1, 0)
        return min(doubled, self.max_backoff_ms) / 1000

    @classmethod
    def parse_all(
        cls, value: object, current: tuple[WebhookSettings, ...]
    ) -> tuple[WebhookSettings, ...]:
        """A PUT body's ``webhooks``; a masked or absent secret keeps the current one
        (matched by id, else by URL)."""
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > MAX_WEBHOOKS:
            raise BadRequest(
                f"field 'webhooks' must be a list of at most {MAX_WEBHOOKS} objects",
                {"field": "webhooks"},
            )
        out: list[WebhookSettings] = []
        for i, raw in enumerate(value):
            hook = cls._parse_one(raw, f"webhooks[{i}].", current)
            if any(h.id == hook.id for h in out):
                raise BadRequest(
                    f"duplicate webhook id {hook.id!r}", {"field": f"webhooks[{i}].id"}
                )
            out.append(hook)
        return tuple(out)

    @classmethod
    def _parse_one(
        cls, raw: object, p: str, current: tuple[WebhookSettings, ...]
    ) -> WebhookSettings:
        if not isinstance(raw, dict):
            raise BadRequest(f"field '{p[:-1]}' must be an object", {"field": p[:-1]})
        known_fields(raw, _HOOK_KEYS, p)
        url = url_field(raw.get("url"), p + "url")
        hook_id = raw.get("id") or _hook_id(url)
        if not isinstance(hook_id, str) or not 1 <= len(hook_id) <= 100:
            raise BadRequest(f"field '{p}id' must be a short string", {"field": p + "id"})
        events = raw.get("events", list(EVENTS))
        if (
            not isinstance(events, list)
            or not events
            or any(e not in EVENTS and e != "*" for e in events)
        ):
            raise BadRequest(
                f"field '{p}events' must be a non-empty list of: {', '.join(EVENTS)} or '*'",
                {"field": p + "events"},
            )
        prev = next((h for h in current if h.id == hook_id), None) or next(
            (h for h in current if h.url == url), None
        )
        secret = secret_field(raw.get("secret"), prev.secret if prev else None, p + "secret")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BadRequest(f"field '{p}enabled' must be true or false", {"field": p + "enabled"})
        ints = {k: int_field({**_HOOK_DEFAULTS, **raw}, k, p + k) for k in _HOOK_DEFAULTS}
        return cls(
            id=hook_id,
            url=url,
            secret=secret,
            events=tuple(dict.fromkeys(events)),
            enabled=enabled,
            timeout_ms=ints["timeoutMs"],
            max_attempts=ints["maxAttempts"],
            backoff_ms=ints["backoffMs"],
            max_backoff_ms=ints["maxBackoffMs"],
        )

    @classmethod
    def from_json_all(cls, value: object) -> tuple[WebhookSettings, ...]:
        hooks: dict[str, WebhookSettings] = {}
        for raw in value if isinstance(value, list) else []:
            if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
                continue
            ints = {k: stored_int(raw, k) or default for k, default in _HOOK_DEFAULTS.items()}
            events = raw.get("events")
            hook = cls(
                id=str(raw.get("id") or _hook_id(raw["url"])),
                url=raw["url"],
                secret=raw.get("secret") or None,
                events=tuple(events) if isinstance(events, list) and events else EVENTS,
                enabled=bool(raw.get("enabled", True)),
                timeout_ms=ints["timeoutMs"],
                max_attempts=ints["maxAttempts"],
                backoff_ms=ints["backoffMs"],
                max_backoff_ms=ints["maxBackoffMs"],
            )
            hooks[hook.id] = hook
        return tuple(hooks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "secret": self.secret,
            "events": list(self.events),
            "enabled": self.enabled,
            "timeoutMs": self.timeout_ms,
            "maxAttempts": self.max_attempts,
            "backoffMs": self.backoff_ms,
            "maxBackoffMs": self.max_backoff_ms,
        }

    def public_json(self) -> dict[str, Any]:
        out = self.to_json()
        if self.secret:
            out["secret"] = MASK
        return out
