"""Outgoing moderation webhooks: signed events, retried with exponential back-off.

``emit(event, data)`` never waits and never fails the caller: the event goes on a bounded
in-memory queue; a background task stores one delivery row per subscribed webhook in SQLite
(``webhook_deliveries``), and a sender task POSTs due deliveries and records each attempt.
Pending deliveries survive restarts; a slow or dead receiver only delays its own deliveries.

Configuration lives in the moderation settings (``PUT /moderation/settings``)::

    "webhooks": [{"id": "ops", "url": "https://...", "secret": "...",
                  "events": ["message.disapproved", ...], "enabled": true,
                  "timeoutMs": 5000, "maxAttempts": 8, "backoffMs": 1000,
                  "maxBackoffMs": 600000}]

Body: ``{"id": <event id>, "type": <event>, "createdAt": <unix s>, "data": {...}}``, signed as
in ``moderation.providers.signing``; headers ``X-Parley-Event`` and ``X-Parley-Delivery``
(the event id; the same on every retry, for idempotent receivers).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from moderation.providers.signing import signed_headers
from server.errors import BadRequest
from server.metrics import Metrics
from server.storage.ports import DeliveryRepository
from server.storage.types import Delivery, NewDelivery

log = logging.getLogger(__name__)

EVENTS = (
    "message.disapproved",
    "message.flagged",
    "message.reported",
    "message.review_required",
    "user.banned",
    "moderation.provider_failed",
)
MASK = "********"
MAX_WEBHOOKS = 20
QUEUE_SIZE = 10_000
BATCH = 50
IDLE_WAIT = 30.0
USER_AGENT = "Parley-Webhooks/1"
_INTS: dict[str, tuple[int, int, int]] = {  # key: (lo, hi, default)
    "timeoutMs": (50, 60_000, 5000),
    "maxAttempts": (1, 100, 8),
    "backoffMs": (10, 3_600_000, 1000),
    "maxBackoffMs": (10, 86_400_000, 600_000),
}
_KEYS = ("id", "url", "secret", "events", "enabled", *_INTS)


@dataclass(frozen=True)
class Hook:
    """One configured receiver; times in seconds."""

    id: str
    url: str
    secret: str | None = field(repr=False)
    events: frozenset[str]
    enabled: bool
    timeout: float
    max_attempts: int
    backoff: float
    max_backoff: float

    def delay(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed attempts: doubling, capped."""
        return float(min(self.backoff * 2 ** max(attempts - 1, 0), self.max_backoff))


# --------------------------------------------------------------------- settings


def _hook_id(url: str) -> str:
    return "wh-" + hashlib.sha256(url.encode()).hexdigest()[:10]


def validate_webhooks(value: object, current: object) -> list[dict[str, Any]]:
    """The stored ``webhooks`` list for a PUT body; a masked or absent secret keeps the old one
    (matched by id, else by URL). Raises ``BadRequest``."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_WEBHOOKS:
        raise BadRequest(
            f"field 'webhooks' must be a list of at most {MAX_WEBHOOKS} objects",
            {"field": "webhooks"},
        )
    old = [h for h in current if isinstance(h, dict)] if isinstance(current, list) else []
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        p = f"webhooks[{i}]."
        if not isinstance(raw, dict):
            raise BadRequest(f"field 'webhooks[{i}]' must be an object", {"field": p[:-1]})
        for key in raw:
            if key not in _KEYS:
                raise BadRequest(f"unknown field '{p}{key}'", {"field": p + key})
        url = raw.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest(f"field '{p}url' must be an http(s) URL", {"field": p + "url"})
        hook_id = raw.get("id") or _hook_id(url)
        if not isinstance(hook_id, str) or not 1 <= len(hook_id) <= 100:
            raise BadRequest(f"field '{p}id' must be a short string", {"field": p + "id"})
        if any(h["id"] == hook_id for h in out):
            raise BadRequest(f"duplicate webhook id {hook_id!r}", {"field": p + "id"})
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
        secret = raw.get("secret")
        if secret in (None, "", MASK):
            prev = next((h for h in old if h.get("id") == hook_id), None) or next(
                (h for h in old if h.get("url") == url), None
            )
            secret = prev.get("secret") if prev else None
        if secret is not None and not isinstance(secret, str):
            raise BadRequest(f"field '{p}secret' must be a string", {"field": p + "secret"})
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise BadRequest(f"field '{p}enabled' must be true or false", {"field": p + "enabled"})
        hook: dict[str, Any] = {
            "id": hook_id,
            "url": url,
            "secret": secret,
            "events": list(dict.fromkeys(events)),
            "enabled": enabled,
        }
        for key, (lo, hi, default) in _INTS.items():
            n = raw.get(key, default)
            if not isinstance(n, int) or isinstance(n, bool) or not lo <= n <= hi:
                raise BadRequest(
                    f"field '{p}{key}' must be an integer in {lo}..{hi}", {"field": p + key}
                )
            hook[key] = n
        out.append(hook)
    return out


def public_webhooks(value: object) -> object:
    """``webhooks`` with secrets masked."""
    if not isinstance(value, list):
        return value
    return [{**h, "secret": MASK} if isinstance(h, dict) and h.get("secret") else h for h in value]


def hooks_of(value: object) -> dict[str, Hook]:
    """Hooks from a stored ``webhooks`` list (already validated)."""
    hooks: dict[str, Hook] = {}
    for raw in value if isinstance(value, list) else []:
        if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
            continue
        events = set(raw.get("events") or EVENTS)
        if "*" in events:
            events = set(EVENTS)
        hook = Hook(
            id=str(raw.get("id") or _hook_id(raw["url"])),
            url=raw["url"],
            secret=raw.get("secret") or None,
            events=frozenset(events),
            enabled=bool(raw.get("enabled", True)),
            timeout=int(raw.get("timeoutMs", _INTS["timeoutMs"][2])) / 1000,
            max_attempts=int(raw.get("maxAttempts", _INTS["maxAttempts"][2])),
            backoff=int(raw.get("backoffMs", _INTS["backoffMs"][2])) / 1000,
            max_backoff=int(raw.get("maxBackoffMs", _INTS["maxBackoffMs"][2])) / 1000,
        )
        hooks[hook.id] = hook
    return hooks


# --------------------------------------------------------------------- the sender


@dataclass(frozen=True)
class _Event:
    id: str
    type: str
    created_at: int
    data: Mapping[str, Any]
    hooks: tuple[Hook, ...]


class WebhookSender:
    """Owns the event queue, the persisting task and the sending task; see the module doc."""

    def __init__(self, store: DeliveryRepository, metrics: Metrics) -> None:
        self.store = store
        self._metrics = metrics
        self._hooks: dict[str, Hook] = {}
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(QUEUE_SIZE)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def configure(self, webhooks: object) -> None:
        """Use these webhooks (the stored ``webhooks`` setting) from now on."""
        self._hooks = hooks_of(webhooks)
        self._wake.set()

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Queue ``event`` for every enabled webhook subscribed to it; never blocks."""
        hooks = tuple(h for h in self._hooks.values() if h.enabled and event in h.events)
        if not hooks:
            return
        item = _Event(uuid.uuid4().hex, event, int(time.time()), dict(data), hooks)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.webhook_events_dropped.inc()
            log.error("webhook event queue full; %s event %s dropped", event, item.id)

    async def start(self) -> None:
        """Start the persisting and sending tasks (pending deliveries resume)."""
        if self._tasks:
            return
        self._metrics.webhook_pending.set(await self.store.pending_count())
        self._tasks = [
            asyncio.create_task(self._persist_loop(), name="webhooks-persist"),
            asyncio.create_task(self._send_loop(), name="webhooks-send"),
        ]
        for task in self._tasks:
            task.add_done_callback(_log_end)

    async def stop(self) -> None:
        """Store queued events, stop the tasks, close the HTTP client."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            while not self._queue.empty():
                await self._persist(self._queue.get_nowait())
        except Exception:
            log.exception("storing queued webhook events at shutdown failed")
        await self._client.aclose()

    async def deliveries(
        self, *, status: str | None, event: str | None, limit: int
    ) -> list[Delivery]:
        """The delivery log, newest first, optionally by status and event."""
        return await self.store.recent(status=status, event=event, limit=limit)

    async def flush(self) -> None:
        """Wait until every emitted event is stored (for tests and orderly shutdown)."""
        await self._queue.join()

    # ----------------------------------------------------------------- tasks

    async def _persist(self, event: _Event) -> None:
        payload = json.dumps(
            {"id": event.id, "type": event.type, "createdAt": event.created_at, "data": event.data},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        await self.store.add(
            [NewDelivery(event.id, event.type, h.id, h.url, payload) for h in event.hooks],
            time.time(),
        )
        self._metrics.webhook_pending.inc(len(event.hooks))

    async def _persist_loop(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._persist(event)
                self._wake.set()
            except Exception:
                log.exception("storing webhook event %s (%s) failed", event.id, event.type)
            finally:
                self._queue.task_done()

    async def _send_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                due = await self.store.due(time.time(), limit=BATCH)
                if due:
                    await asyncio.gather(*(self._deliver(d) for d in due))
                    continue
                next_at = await self.store.next_due()
            except Exception:
                log.exception("webhook sender failed; retrying shortly")
                next_at = time.time() + 1.0
            wait = IDLE_WAIT if next_at is None else min(max(next_at - time.time(), 0), IDLE_WAIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _deliver(self, delivery: Delivery) -> None:
        hook = self._hooks.get(delivery.hook_id)
        now = time.time()
        if hook is None:
            await self._record(delivery, "failed", delivery.attempts, None, "webhook removed", now)
            return
        headers = {
            "Content-Type": "application/json",
            "X-Parley-Event": delivery.event,
            "X-Parley-Delivery": delivery.event_id,
            **signed_headers(hook.secret, delivery.payload),
        }
        code: int | None = None
        try:
            response = await self._client.post(
                hook.url, content=delivery.payload, headers=headers, timeout=hook.timeout
            )
            code = response.status_code
            error = "" if 200 <= code < 300 else f"HTTP {code}"
        except httpx.TimeoutException:
            error = f"timed out after {round(hook.timeout * 1000)} ms"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        now = time.time()
        if not error:
            await self._record(delivery, "delivered", attempts, code, "", now)
        elif attempts >= hook.max_attempts:
            log.error(
                "webhook %s: delivery %d (%s) failed after %d attempts: %s",
                hook.id,
                delivery.id,
                delivery.event,
                attempts,
                error,
            )
            await self._record(delivery, "failed", attempts, code, error, now)
        else:
            log.warning(
                "webhook %s: delivery %d (%s) attempt %d failed: %s",
                hook.id,
                delivery.id,
                delivery.event,
                attempts,
                error,
            )
            await self._record(
                delivery, "pending", attempts, code, error, now, next_at=now + hook.delay(attempts)
            )

    async def _record(
        self,
        delivery: Delivery,
        status: str,
        attempts: int,
        code: int | None,
        error: str,
        now: float,
        *,
        next_at: float | None = None,
    ) -> None:
        await self.store.update(
            delivery.id,
            status=status,
            attempts=attempts,
            next_at=now if next_at is None else next_at,
            last_status=code,
            last_error=error,
            at=now,
        )
        outcome = "retry" if status == "pending" else status
        self._metrics.webhook_attempts.labels(outcome).inc()
        if status != "pending":
            self._metrics.webhook_pending.dec()


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s ended", task.get_name(), exc_info=task.exception())
