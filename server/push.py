"""Offline push (issue 16 item 7): a user with no live connection who receives a message gets
a push on each device they registered, through a push gateway the operator configured.

- Devices register an endpoint (``POST /api/v1/me/push-endpoints``): ``unifiedpush`` (a
  UnifiedPush/ntfy-style URL that takes a POST of the payload) or ``webhook`` (a POST signed
  with the endpoint's secret, for an app's own relay to APNs or FCM). The URL must start with
  one of ``Settings.push_gateways``; with none configured push is off.
- ``notify`` is called by the fan-out after each delivery of a new message; it never waits:
  the job goes on a bounded queue (full: dropped and counted). A task takes each job, keeps
  the receivers who are offline (``Hub.online``), reads their endpoints in one query and
  sends one request per endpoint, a bounded number at a time, retried with exponential
  back-off on a network error, 429 or 5xx. A 404 or 410 means the device unsubscribed: the
  endpoint is deleted. Pushes live in memory: a restart forgets those not yet sent.
- The payload names the message and its conversation, never its text, unless the device
  asked for it (``includeText``) and the message is a text message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from moderation.providers.signing import signed_headers
from server.clock import Clock
from server.errors import BadRequest, Forbidden, NotFound
from server.hub import Hub
from server.metrics import Metrics
from server.models import Message
from server.protocol import is_ident
from server.storage.ports import PushRepository
from server.storage.types import PushEndpoint

log = logging.getLogger(__name__)

KINDS = ("unifiedpush", "webhook")
QUEUE_SIZE = 10_000
#: Requests to gateways in flight at once, and pushes waiting for a retry at most.
CONCURRENCY = 16
MAX_RETRYING = 5_000
MAX_ENDPOINTS_PER_USER = 10
MAX_URL = 2_000
USER_AGENT = "Parley-Push/1"


def gateway_allows(url: str, gateways: tuple[str, ...]) -> bool:
    """Whether ``url`` is on a configured gateway: same scheme, host and port as a prefix,
    and its path under the prefix's path (``https://ntfy.example/`` allows any topic there;
    ``https://ntfy.example.evil/`` does not match it)."""
    try:
        u = urlsplit(url)
        port = u.port
    except ValueError:
        return False
    if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password:
        return False
    for prefix in gateways:
        g = urlsplit(prefix)
        if (u.scheme, u.hostname, port) != (g.scheme, g.hostname, g.port):
            continue
        base = g.path if g.path.endswith("/") else g.path + "/"
        if g.path in ("", "/") or u.path == g.path or u.path.startswith(base):
            return True
    return False


def payload(message: Message, endpoint: PushEndpoint) -> bytes:
    """What a device is sent: which message, in which conversation, from whom. The text only
    when the device asked for it and the message is a text message."""
    body: dict[str, Any] = {
        "type": "message",
        "endpointId": endpoint.id,
        "messageId": message.id,
        "conversationId": message.conversation_id,
        "sender": message.sender,
        "receiver": message.receiver,
        "receiverType": message.receiver_type,
        "category": message.category,
        "messageType": message.type,
        "sentAt": message.sent_at,
    }
    if endpoint.include_text and message.category == "message" and message.type == "text":
        body["text"] = message.text
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def endpoint_secret(key: str, endpoint_id: str) -> str:
    """The webhook signing secret of one endpoint, derived from the server's key: nothing
    to store, and a leaked secret signs for that endpoint only."""
    return hmac.new(
        key.encode(), b"parley-push:" + endpoint_id.encode(), hashlib.sha256
    ).hexdigest()


@dataclass(frozen=True)
class _Job:
    message: Message
    receivers: tuple[str, ...]


class PushService:
    """Endpoints per device, and the queue and tasks that push to them."""

    def __init__(
        self,
        store: PushRepository,
        hub: Hub,
        metrics: Metrics,
        *,
        gateways: tuple[str, ...],
        signing_key: str,
        clock: Clock,
        attempts: int = 6,
        retry_delay: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self._store = store
        self._hub = hub
        self._metrics = metrics
        self._gateways = gateways
        self._key = signing_key
        self._clock = clock
        self._attempts = max(1, attempts)
        self._delay = retry_delay
        self._timeout = timeout
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(QUEUE_SIZE)
        self._slots = asyncio.Semaphore(CONCURRENCY)
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._gateways)

    # ----------------------------------------------------------------- endpoints

    async def register(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store a device's endpoint (a device that registers again replaces its own); the
        answer carries ``secret`` for a ``webhook`` endpoint."""
        if not self.enabled:
            raise Forbidden("offline push is not configured on this server (--push-gateways)")
        kind = body.get("kind", "unifiedpush")
        if kind not in KINDS:
            raise BadRequest("field 'kind' must be unifiedpush or webhook", {"field": "kind"})
        url = body.get("url")
        if (
            not isinstance(url, str)
            or len(url) > MAX_URL
            or not gateway_allows(url, self._gateways)
        ):
            raise BadRequest(
                "field 'url' must be an http(s) URL on a configured push gateway",
                {"field": "url", "gateways": list(self._gateways)},
            )
        device = body.get("deviceId", "default")
        if not is_ident(device):
            raise BadRequest(
                "field 'deviceId' must be 1-100 of [A-Za-z0-9_-]", {"field": "deviceId"}
            )
        include_text = body.get("includeText", False)
        if not isinstance(include_text, bool):
            raise BadRequest("field 'includeText' must be a boolean", {"field": "includeText"})
        mine = await self._store.endpoints_of([uid])
        if len(mine) >= MAX_ENDPOINTS_PER_USER and all(e.device_id != device for e in mine):
            raise BadRequest(
                f"at most {MAX_ENDPOINTS_PER_USER} push endpoints per user",
                {"limit": MAX_ENDPOINTS_PER_USER},
            )
        stored = await self._store.put_endpoint(
            PushEndpoint(
                id="pe_" + secrets.token_hex(12),
                uid=uid,
                device_id=device,
                kind=kind,
                url=url,
                include_text=include_text,
                created_at=self._clock.now(),
            )
        )
        out = stored.to_json()
        if stored.kind == "webhook":
            out["secret"] = endpoint_secret(self._key, stored.id)
        return out

    async def endpoints(self, uid: str) -> list[dict[str, Any]]:
        return [e.to_json() for e in await self._store.endpoints_of([uid])]

    async def unregister(self, uid: str, endpoint_id: str) -> None:
        if not await self._store.delete_endpoint(uid, endpoint_id):
            raise NotFound("no such push endpoint", {"endpointId": endpoint_id})

    # ----------------------------------------------------------------- pushing

    def notify(self, message: Message, receivers: list[str]) -> None:
        """A new message reached ``receivers`` (those connected have it): push to the others.
        Never waits; a full queue drops the job (``parley_push_total{outcome="dropped"}``)."""
        if not self._gateways or not receivers or self._task is None:
            return
        try:
            self._queue.put_nowait(_Job(message, tuple(receivers)))
        except asyncio.QueueFull:
            self._metrics.push.labels("dropped").inc()

    async def start(self) -> None:
        if not self._gateways:
            return
        self._client = httpx.AsyncClient(
            follow_redirects=False, headers={"User-Agent": USER_AGENT}, timeout=self._timeout
        )
        self._task = asyncio.create_task(self._run(), name="parley-push")

    async def stop(self) -> None:
        task, self._task = self._task, None
        tasks = [t for t in (task, *self._sending) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._dispatch(job)
            except Exception:  # a store error: this job is lost, the next ones are not
                log.exception("offline push of message %s failed", job.message.id)

    async def _dispatch(self, job: _Job) -> None:
        offline = [u for u in job.receivers if not await self._hub.online(u)]
        if not offline:
            return
        for endpoint in await self._store.endpoints_of(offline):
            if len(self._sending) >= MAX_RETRYING:
                self._metrics.push.labels("dropped").inc()
                continue
            task = asyncio.create_task(self._deliver(job.message, endpoint))
            self._sending.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("offline push task failed", exc_info=task.exception())

    async def _deliver(self, message: Message, endpoint: PushEndpoint) -> None:
        """One push, retried with back-off until it is accepted, refused or out of tries."""
        body = payload(message, endpoint)
        delay = self._delay
        for attempt in range(1, self._attempts + 1):
            async with self._slots:
                outcome = await self._post(endpoint, body)
            if outcome in ("delivered", "failed"):
                self._metrics.push.labels(outcome).inc()
                return
            if outcome == "gone":
                self._metrics.push.labels("gone").inc()
                await self._store.delete_endpoint(endpoint.uid, endpoint.id)
                return
            if attempt < self._attempts:
                self._metrics.push.labels("retry").inc()
                await asyncio.sleep(delay)
                delay *= 2
        self._metrics.push.labels("failed").inc()
        log.warning(
            "offline push to endpoint %s gave up after %d tries", endpoint.id, self._attempts
        )

    async def _post(self, endpoint: PushEndpoint, body: bytes) -> str:
        """``delivered``, ``gone`` (404/410: unsubscribed), ``failed`` (another 4xx: no
        retry) or ``retry`` (network error, timeout, 429, 5xx)."""
        assert self._client is not None
        headers = {"Content-Type": "application/json", "X-Parley-Event": "push"}
        if endpoint.kind == "webhook":
            headers |= signed_headers(endpoint_secret(self._key, endpoint.id), body)
        else:
            headers |= {"TTL": "86400", "Urgency": "high"}  # UnifiedPush / WebPush headers
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.info("offline push to endpoint %s: %r", endpoint.id, exc)
            return "retry"
        status = response.status_code
        if 200 <= status < 300:
            return "delivered"
        if status in (404, 410):
            return "gone"
        if status == 429 or status >= 500:
            return "retry"
        log.warning("offline push to endpoint %s refused with %d", endpoint.id, status)
        return "failed"
