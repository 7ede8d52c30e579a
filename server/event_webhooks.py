"""Outgoing event webhooks: moderation events, signed, delivered with exponential back-off.

``emit(event, data)`` (``contracts.EventSink``) never waits and never fails the caller: the
event goes on a bounded in-memory queue; a background task stores one delivery row per
subscribed webhook (the delivery log, ``DeliveryRepository``), and a sender task POSTs due
deliveries and records each attempt. Pending deliveries survive restarts; a slow or dead
receiver only delays its own deliveries.

The webhooks are configured in the moderation settings (``webhooks``; validated by
``server.moderation_settings.WebhookSettings``).

Body: ``{"id": <event id>, "type": <event>, "createdAt": <unix s>, "data": {...}}``, signed as
in ``moderation.providers.signing``; headers ``X-Parley-Event`` and ``X-Parley-Delivery``
(the event id; the same on every retry, for idempotent receivers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from moderation.providers.signing import signed_headers
from server.clock import Clock
from server.metrics import Metrics
from server.storage.ports import DeliveryRepository
from server.storage.types import Delivery, NewDelivery
from server.webhook_settings import WebhookSettings

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000
BATCH = 50
IDLE_WAIT = 30.0
USER_AGENT = "Parley-Webhooks/1"


# --------------------------------------------------------------------- the sender


@dataclass(frozen=True)
class _Event:
    id: str
    type: str
    created_at: int
    data: Mapping[str, Any]
    hooks: tuple[WebhookSettings, ...]


class EventWebhooks:
    """Owns the event queue, the persisting task and the sending task; see the module doc."""

    def __init__(self, store: DeliveryRepository, metrics: Metrics, *, clock: Clock) -> None:
        self._store = store
        self._metrics = metrics
        # Events are stamped with the clock; delivery scheduling (back-off, due times) is in
        # fractional wall seconds, as the delivery log stores them.
        self._clock = clock
        self._hooks: dict[str, WebhookSettings] = {}
        self._subscribed: dict[str, frozenset[str]] = {}
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(QUEUE_SIZE)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client = httpx.AsyncClient(follow_redirects=False, headers={"User-Agent": USER_AGENT})

    def configure(self, webhooks: tuple[WebhookSettings, ...]) -> None:
        """Use these webhooks from now on."""
        self._hooks = {h.id: h for h in webhooks}
        self._subscribed = {h.id: h.subscribed for h in webhooks}
        self._wake.set()

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        """Queue ``event`` for every enabled webhook subscribed to it; never blocks."""
        subscribed = self._subscribed
        hooks = tuple(h for h in self._hooks.values() if h.enabled and event in subscribed[h.id])
        if not hooks:
            return
        item = _Event(uuid.uuid4().hex, event, self._clock.now(), dict(data), hooks)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._metrics.webhook_events_dropped.inc()
            log.error("webhook event queue full; %s event %s dropped", event, item.id)

    async def start(self) -> None:
        """Start the persisting and sending tasks (pending deliveries resume)."""
        if self._tasks:
            return
        self._metrics.webhook_pending.set(await self._store.pending_count())
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
        return await self._store.recent(status=status, event=event, limit=limit)

    # ----------------------------------------------------------------- tasks

    async def _persist(self, event: _Event) -> None:
        payload = json.dumps(
            {"id": event.id, "type": event.type, "createdAt": event.created_at, "data": event.data},
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        await self._store.add(
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
                due = await self._store.due(time.time(), limit=BATCH)
                if due:
                    await asyncio.gather(*(self._deliver(d) for d in due))
                    continue
                next_at = await self._store.next_due()
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
        await self._store.update(
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
