"""The load test's I/O: users, groups and uploads over REST, one WebSocket per user opened over
the ramp-up, paced sends with a window of unacknowledged messages per user, the drain, the
history check, and a live progress bar (``rich``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from client.loadtest.plan import Plan, Planned, png
from client.loadtest.tracker import Tracker
from client.sdk import RestClient, ServerError

clock = time.perf_counter


@dataclass(frozen=True)
class RunConfig:
    """How to drive the server: where, how fast, how long to wait."""

    url: str
    api_key: str
    ramp_up: float = 0.0
    window: int = 4
    rate: float = 0.0
    ack_timeout: float = 30.0
    drain_timeout: float = 30.0
    settle: float = 1.0
    verify_tls: bool = True
    check_history: bool = True
    cleanup: bool = False
    concurrency: int = 16


#: ``(what, done, total, counters)``: ``connected`` or ``messages``; the counters of the
#: messages (delivered, blocked, errors) for a live display.
Progress = Callable[[str, int, int, dict[str, int]], None]


class Pacer:
    """Hands out send slots at ``rate`` per second in total (0: no pacing)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = 0.0
        self.k = 0

    async def wait(self) -> None:
        if self.rate <= 0:
            return
        if not self.start:
            self.start = clock()
        due = self.start + self.k / self.rate
        self.k += 1
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)


def conversation_id(m: Planned) -> str:
    if m.receiver_type == "group":
        return f"group_{m.receiver}"
    a, b = sorted((m.sender, m.receiver))
    return f"{a}_user_{b}"


def _ssl(cfg: RunConfig) -> ssl.SSLContext | None:
    if not cfg.url.startswith("https"):
        return None
    ctx = ssl.create_default_context()
    if not cfg.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _bounded(n: int, jobs: list[Callable[[], Awaitable[None]]]) -> None:
    sem = asyncio.Semaphore(n)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with sem:
            await job()

    await asyncio.gather(*(one(j) for j in jobs))


async def _created(call: Awaitable[Any]) -> None:
    """Run a create call; an existing user, group or member (409) is fine on a rerun."""
    try:
        await call
    except ServerError as exc:
        if exc.status != 409:
            raise


async def setup(
    rest: RestClient, plan: Plan, cfg: RunConfig
) -> tuple[dict[str, str], dict[str, str]]:
    """Users, tokens, groups and one upload per media message: (tokens, media ids by muid)."""
    tokens: dict[str, str] = {}

    async def user(uid: str) -> None:
        await _created(rest.create_user(uid, uid))
        tokens[uid] = await rest.issue_token(uid)

    await _bounded(cfg.concurrency, [lambda u=u: user(u) for u in plan.users])  # type: ignore[misc]

    async def group(guid: str, members: tuple[str, ...]) -> None:
        await _created(rest.create_group(guid, guid, type="private", owner=members[0]))
        for uid in members[1:]:  # one at a time: each add reads and writes the member list
            await _created(rest.add_member(guid, uid))

    await _bounded(
        cfg.concurrency,
        [lambda g=g, ms=ms: group(g, ms) for g, ms in plan.groups.items()],  # type: ignore[misc]
    )
    media: dict[str, str] = {}

    async def upload(m: Planned) -> None:
        body = await rest.upload(
            png(m.seq), name=f"{m.muid}.png", content_type="image/png", kind="image",
            uploader=m.sender,
        )  # fmt: skip
        media[m.muid] = str(body["mediaId"])

    uploads = [m for m in plan.messages if m.kind == "media"]
    await _bounded(cfg.concurrency, [lambda m=m: upload(m) for m in uploads])  # type: ignore[misc]
    return tokens, media


def send_frame(m: Planned, media_id: str | None) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message.send",
        "id": m.muid,
        "muid": m.muid,
        "receiverType": m.receiver_type,
        "receiver": m.receiver,
        "category": "message",
    }
    if media_id is not None:
        frame |= {"messageType": "image", "mediaId": media_id}
    else:
        frame |= {"messageType": "text", "text": m.text}
    return frame


class UserLoad:
    """One user's connection: opens after its ramp-up delay, reads every frame into the
    tracker, sends its planned messages with at most ``window`` unacknowledged."""

    def __init__(
        self,
        uid: str,
        token: str,
        messages: tuple[Planned, ...],
        media: dict[str, str],
        tracker: Tracker,
        pacer: Pacer,
        cfg: RunConfig,
    ) -> None:
        self.uid, self.token, self.messages, self.media = uid, token, messages, media
        self.tracker, self.pacer, self.cfg = tracker, pacer, cfg
        self.ws: ClientConnection | None = None
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connect_error = ""

    async def open(self, ws_url: str) -> bool:
        try:
            self.ws = await connect(
                ws_url, ssl=_ssl(self.cfg), open_timeout=30, compression=None,
                max_size=2**20, max_queue=None, ping_interval=None,
            )  # fmt: skip
            await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
            first = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if first.get("type") != "auth.ok":
                raise ConnectionError(f"{first.get('code')}: {first.get('message')}")
        except Exception as exc:
            self.connect_error = f"{type(exc).__name__}: {exc}"[:200]
            if self.ws is not None:
                await self.ws.close()
            self.ws = None
            return False
        return True

    async def read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                now = clock()
                frame = json.loads(raw)
                fid = frame.get("id")
                if isinstance(fid, str) and fid in self.replies:
                    fut = self.replies.pop(fid)
                    if not fut.done():
                        fut.set_result(frame)
                self.tracker.on_frame(self.uid, frame, now)
        for fut in self.replies.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))

    async def send_all(self) -> None:
        window = asyncio.Semaphore(self.cfg.window)

        async def one(m: Planned) -> None:
            async with window:
                await self.send_one(m)

        await asyncio.gather(*(one(m) for m in self.messages))

    async def send_one(self, m: Planned) -> None:
        frame = json.dumps(send_frame(m, self.media.get(m.muid)))
        while True:
            if self.ws is None:
                self.tracker.failed(m.muid, "not_connected", clock())
                return
            await self.pacer.wait()
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.replies[m.muid] = fut
            self.tracker.sending(m.muid, clock())
            try:
                await self.ws.send(frame)
                reply = await asyncio.wait_for(fut, self.cfg.ack_timeout)
            except TimeoutError:
                self.tracker.failed(m.muid, "ack_timeout", clock())
                return
            except Exception:
                self.tracker.failed(m.muid, "connection_closed", clock())
                return
            finally:
                self.replies.pop(m.muid, None)
            if reply.get("type") != "error":
                return
            code = str(reply.get("code"))
            if code == "ERR_RATE_LIMITED":  # the same muid again: idempotent
                wait_ms = (reply.get("details") or {}).get("retryAfterMs", 1000)
                await asyncio.sleep(min(max(float(wait_ms), 10.0), 60_000.0) / 1000)
                continue
            self.tracker.failed(m.muid, code, clock())
            return

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 3)


async def fetch_history(rest: RestClient, plan: Plan, cfg: RunConfig) -> list[dict[str, Any]]:
    """Every message of every conversation the run wrote to, as staff (the API key) see it."""
    cids = sorted({conversation_id(m) for m in plan.messages})
    out: list[dict[str, Any]] = []

    async def one(cid: str) -> None:
        before: int | None = None
        while True:
            page = await rest.history_page(cid, before=before, limit=100)
            msgs = page["messages"]
            out.extend(msgs)
            if not page["hasMore"] or not msgs:
                return
            before = min(int(m["id"]) for m in msgs)

    await _bounded(cfg.concurrency, [lambda c=c: one(c) for c in cids])  # type: ignore[misc]
    return out


async def run(plan: Plan, cfg: RunConfig, progress: Progress | None = None) -> dict[str, Any]:
    """Run the load against ``cfg.url``; the summary (see ``docs/operations.md``)."""
    report = progress or (lambda _what, _done, _total, _counts: None)
    base = cfg.url.rstrip("/")
    scheme, sep, rest_of_url = base.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise ValueError(f"the URL must start with http:// or https://: {cfg.url!r}")
    ws_url = f"{'wss' if scheme == 'https' else 'ws'}://{rest_of_url}/ws"
    verify: ssl.SSLContext | bool = _ssl(cfg) or True
    t_setup = clock()
    async with RestClient(base, api_key=cfg.api_key, verify=verify, timeout=60) as rest:
        tokens, media = await setup(rest, plan, cfg)
        setup_s = clock() - t_setup
        drained = asyncio.Event()
        finishing = False

        def completed(n: int) -> None:
            if finishing and n >= tracker.counters["sent"]:
                drained.set()

        tracker = Tracker(plan.messages, completed)
        pacer = Pacer(cfg.rate)
        loads = [
            UserLoad(u, tokens[u], plan.by_sender.get(u, ()), media, tracker, pacer, cfg)
            for u in plan.users
        ]
        readers: list[asyncio.Task[None]] = []
        connected = 0

        async def open_one(load: UserLoad) -> None:
            nonlocal connected
            if await load.open(ws_url):
                connected += 1
                readers.append(asyncio.create_task(load.read()))
            report("connected", connected, len(loads), {})

        # Everyone listens before anyone speaks: a receiver not yet connected would miss
        # live frames (history has them; this run checks live delivery).
        await _bounded(cfg.concurrency, [lambda ld=ld: open_one(ld) for ld in loads])  # type: ignore[misc]
        total = len(plan.messages)
        t0 = clock()

        async def user_task(i: int, load: UserLoad) -> None:
            if cfg.ramp_up > 0:  # senders join one after another over the ramp-up
                await asyncio.sleep(max(0.0, t0 + cfg.ramp_up * i / len(loads) - clock()))
            await load.send_all()

        async def ticker() -> None:
            while True:
                report("messages", tracker.completed, total, tracker.live())
                await asyncio.sleep(0.2)

        tick = asyncio.create_task(ticker())
        try:
            await asyncio.gather(*(user_task(i, ld) for i, ld in enumerate(loads)))
            finishing = True
            completed(tracker.completed)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), cfg.drain_timeout)
            await asyncio.sleep(cfg.settle)  # late duplicates would show up now
            report("messages", tracker.completed, total, tracker.live())
        finally:
            tick.cancel()
            await asyncio.gather(*(ld.close() for ld in loads))
            for r in readers:
                r.cancel()
        if cfg.check_history:
            tracker.check_stored(await fetch_history(rest, plan, cfg))
        if cfg.cleanup:
            jobs = [lambda u=u: _erase(rest, u) for u in plan.users]
            await _bounded(cfg.concurrency, jobs)  # type: ignore[arg-type]
    summary = tracker.summary()
    errors = [ld.connect_error for ld in loads if ld.connect_error]
    summary["connections"] = {
        "users": len(loads),
        "connected": connected,
        "failed": len(errors),
        "first_errors": errors[:5],
        "ramp_up_s": cfg.ramp_up,
    }
    summary["setup_s"] = round(setup_s, 3)
    summary["planned"] = plan.expected()
    return summary


async def _erase(rest: RestClient, uid: str) -> None:
    with contextlib.suppress(ServerError):
        await rest.delete_user(uid, erase=True)


def passed(summary: dict[str, Any]) -> bool:
    """Whether a run proves what it checks: every verification holds and nothing failed."""
    v = summary["verification"]
    return bool(
        v["exactly_once"]
        and v["no_blocked_delivered"]
        and v["history_matches"] is not False
        and summary["errors"] == 0
        and summary["incomplete"] == 0
    )
