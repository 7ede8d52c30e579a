"""Asyncio load generator speaking the Parley protocol (``websockets`` client, loopback only).

It drives Parley and the bare relay (``bench/bare_relay.py``) identically: users and tokens
over REST, ``{"type": "auth"}`` as the first frame, then ``message.send`` frames.

Modes (``--mode``):
  pair     ``--conns`` users, one connection each; user i sends to user i^1 (1:1).
  group    ``--conns`` users in groups of ``--group-size``; ``--senders`` per group send to it.
  idle     open ``--conns`` authenticated connections, hold them; server RSS delta per connection.
  connect  connections + auth per second (``--concurrency`` handshakes in flight).
Load: closed loop (``--window`` messages in flight per sender, as fast as the server answers)
or open loop (``--rate`` messages/s in total, spread round-robin over the senders; latency is
then measured from the *scheduled* send time, so generator lag is not hidden).

A message is complete when its sender has ``message.sent``, its ``message.moderated`` (if it
was stored ``pending``), and every receiver has its ``message`` (none if disapproved).
Measured: send->ack (``message.sent``), send->delivery (``message`` at a receiver),
send->verdict (``message.moderated``) and ack->verdict percentiles; completed messages/s;
server CPU seconds from /proc/<pid>/stat and messages per server CPU-second; the
generator's own CPU share (getrusage), so a saturated generator is visible (``gen_cpu_pct``
near 100 means the figures are the generator's limit, not the server's).
Prints one JSON line (last line of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

try:
    import orjson

    loads: Callable[[str | bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - orjson is in the bench extra
    loads = json.loads

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import proc_cpu_s, proc_rss, tree_cpu_s

perf = time.perf_counter

VOCAB = [
    "apple",
    "river",
    "garden",
    "window",
    "yellow",
    "orange",
    "table",
    "coffee",
    "morning",
    "evening",
    "market",
    "station",
    "bridge",
    "castle",
    "forest",
    "meadow",
    "summer",
    "winter",
    "autumn",
    "spring",
    "rocket",
    "planet",
    "silver",
    "golden",
    "violet",
    "purple",
    "little",
    "gentle",
    "quiet",
    "happy",
    "sunny",
    "cloudy",
    "breeze",
    "harbor",
    "island",
    "valley",
    "canyon",
    "desert",
    "ocean",
    "lantern",
    "pencil",
    "paper",
    "notebook",
    "basket",
    "candle",
    "kitchen",
    "bottle",
    "ticket",
    "travel",
    "journey",
    "museum",
    "library",
    "theatre",
    "concert",
    "guitar",
    "piano",
    "violin",
    "drummer",
    "singer",
    "painter",
    "writer",
    "reader",
    "teacher",
    "student",
    "doctor",
    "farmer",
    "baker",
    "tailor",
    "sailor",
    "pilot",
    "driver",
    "helper",
    "friend",
    "neighbor",
    "cousin",
    "sister",
    "brother",
    "mother",
    "father",
    "family",
    "holiday",
    "weekend",
    "monday",
    "tuesday",
    "friday",
    "saturday",
    "sunday",
    "breakfast",
    "lunch",
    "dinner",
    "picnic",
    "sandwich",
    "pancake",
    "cookie",
    "muffin",
    "cherry",
    "banana",
    "lemon",
    "melon",
    "grape",
    "peach",
    "carrot",
    "potato",
    "tomato",
    "onion",
    "pepper",
    "butter",
    "cheese",
    "bread",
    "honey",
    "sugar",
    "salt",
    "tea",
    "juice",
    "water",
    "milk",
    "soup",
    "salad",
    "pasta",
    "rice",
    "noodle",
    "pizza",
    "burger",
    "bicycle",
    "scooter",
    "train",
    "tram",
    "subway",
    "airport",
    "village",
    "city",
    "street",
    "avenue",
    "corner",
    "square",
    "park",
    "fountain",
    "statue",
    "tower",
    "clock",
    "bell",
    "engine",
    "wheel",
    "button",
    "pocket",
    "jacket",
    "sweater",
    "scarf",
    "glove",
    "boots",
    "umbrella",
    "mirror",
    "pillow",
    "blanket",
    "carpet",
    "curtain",
    "sofa",
    "chair",
    "desk",
    "shelf",
    "drawer",
    "closet",
    "ladder",
    "hammer",
    "shovel",
    "bucket",
    "fence",
    "gate",
    "roof",
    "chimney",
    "balcony",
    "terrace",
    "meeting",
    "project",
    "report",
    "update",
    "review",
    "planning",
    "design",
    "sketch",
    "draft",
    "version",
    "release",
    "feature",
    "backlog",
    "sprint",
    "demo",
    "launch",
]
BLOCK_WORD = "shit"  # on the default English profanity list
TEXT_POOL = 4096
#: Texts with ``--distinct`` (each sender sends from its own stretch of them).
DISTINCT_POOL = 65536


def make_texts(seed: int = 7, words: int = 10, count: int = TEXT_POOL) -> list[str]:
    """Distinct short sentences of plain words: no profanity, and no two nearly alike
    (the default spam rule blocks a text repeated 3 times within 10 minutes)."""
    rnd = random.Random(seed)
    return [" ".join(rnd.choices(VOCAB, k=words)) for _ in range(count)]


def ms(values: array[float] | list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))] * 1e3, 2)


def summary(values: array[float] | list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": ms(values, 0.5), "p99": ms(values, 0.99), "max": ms(values, 1)}


class Rec:
    """One message in flight."""

    __slots__ = ("blocked", "got", "left", "nrecv", "receivers", "sender", "status", "t0", "tack")

    def __init__(self, t0: float, sender: int, nrecv: int, blocked: bool) -> None:
        self.t0 = t0
        self.sender = sender
        self.nrecv = nrecv
        self.left = 2 + nrecv  # ack + verdict + deliveries
        self.tack = 0.0
        self.got = 0
        self.blocked = blocked
        self.status = ""
        self.receivers: set[str] | None = None


class Tracker:
    """Matches server frames to messages in flight; collects latencies and counters."""

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict  # track every receiver: duplicates, leaks (soak)
        self.pending: dict[str, Rec] = {}
        self.done_muids: set[str] = set()
        self.ack = array("d")
        self.deliver = array("d")
        self.verdict = array("d")
        self.ack_verdict = array("d")
        self.c: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.windows: dict[int, asyncio.Semaphore] = {}
        self.first_send = 0.0
        self.last_done = 0.0
        self.drained = asyncio.Event()
        self.sending_over = False

    def sent(self, muid: str, rec: Rec, receivers: list[str] | None = None) -> None:
        if self.strict and receivers is not None:
            rec.receivers = set(receivers)
        self.pending[muid] = rec
        self.c["sent"] += 1
        if not self.first_send:
            self.first_send = rec.t0

    def _finish(self, muid: str, rec: Rec, now: float) -> None:
        del self.pending[muid]
        self.c["completed"] += 1
        self.last_done = now
        if self.strict:
            self.done_muids.add(muid)
        sem = self.windows.get(rec.sender)
        if sem is not None:
            sem.release()
        if self.sending_over and not self.pending:
            self.drained.set()

    def on_frame(self, uid: str, data: str | bytes) -> None:
        now = perf()
        m = loads(data)
        kind = m.get("type")
        if kind == "message":
            muid = m["message"].get("muid")
            rec = self.pending.get(muid)
            if rec is None:
                self.c["dup_deliveries" if muid in self.done_muids else "late_deliveries"] += 1
                return
            if rec.receivers is not None:
                if uid not in rec.receivers:
                    leak = rec.status == "disapproved"
                    self.c["leaked_deliveries" if leak else "dup_deliveries"] += 1
                    return
                rec.receivers.discard(uid)
            if rec.status == "disapproved":
                self.c["leaked_deliveries"] += 1
                return
            self.c["delivered"] += 1
            self.deliver.append(now - rec.t0)
            rec.got += 1
            rec.left -= 1
            if rec.left <= 0:
                self._finish(muid, rec, now)
        elif kind == "message.sent":
            msg = m["message"]
            muid = msg.get("muid")
            rec = self.pending.get(muid)
            if rec is None:
                self.c["late_acks"] += 1
                return
            rec.tack = now
            self.ack.append(now - rec.t0)
            self.c["acked"] += 1
            rec.left -= 1
            if msg.get("moderationStatus") != "pending":
                self.c["unmoderated"] += 1
                rec.left -= 1  # no verdict will come
            if rec.left <= 0:
                self._finish(muid, rec, now)
        elif kind == "message.moderated":
            msg = m["message"]
            muid = msg.get("muid")
            rec = self.pending.get(muid)
            if rec is None:
                self.c["late_verdicts"] += 1
                return
            status = msg.get("moderationStatus", "")
            rec.status = status
            self.c[f"verdict_{status}"] += 1
            self.verdict.append(now - rec.t0)
            if rec.tack:
                self.ack_verdict.append(now - rec.tack)
            if status == "disapproved":
                mod = m.get("moderation") or {}
                self.reasons[str(mod.get("ruleId"))] += 1
                self.c["blocked_as_intended" if rec.blocked else "blocked_clean_text"] += 1
            elif rec.blocked:
                self.c["missed_block"] += 1
            if status != "approved":
                rec.left -= rec.nrecv - rec.got  # no (more) deliveries will come
                if rec.receivers is not None:
                    rec.receivers.clear()
            rec.left -= 1
            if rec.left <= 0:
                self._finish(muid, rec, now)
        elif kind == "error":
            muid = m.get("id")
            self.c[f"error_{m.get('code')}"] += 1
            rec = self.pending.get(muid) if isinstance(muid, str) else None
            if rec is not None:
                self._finish(muid, rec, now)

    def lost(self) -> int:
        """Messages still waiting for a delivery that should have come (approved/unmoderated)."""
        return sum(
            1 for r in self.pending.values() if r.tack and r.status in ("", "approved") and r.left
        )


class Client:
    __slots__ = ("idx", "reader", "uid", "ws")

    def __init__(self, idx: int, uid: str, ws: ClientConnection) -> None:
        self.idx = idx
        self.uid = uid
        self.ws = ws
        self.reader: asyncio.Task[None] | None = None


# ---------------------------------------------------------------- setup over REST


async def setup_users(
    base_url: str, api_key: str, uids: list[str], groups: dict[str, list[str]], conc: int = 16
) -> dict[str, str]:
    """Create users (and groups), return uid -> token. Existing users/members are fine (409)."""
    tokens: dict[str, str] = {}
    sem = asyncio.Semaphore(conc)
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"X-API-Key": api_key}, limits=limits, timeout=60
    ) as http:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with sem:
                r = await http.post(path, json=body)
            if r.status_code == 409:
                return {}
            if r.status_code >= 300:
                raise RuntimeError(f"POST {path} -> {r.status_code} {r.text[:200]}")
            out: dict[str, Any] = r.json()
            return out

        async def user(uid: str) -> None:
            await post("/api/v1/users", {"uid": uid, "name": uid})
            tokens[uid] = (await post(f"/api/v1/users/{uid}/tokens", {}))["token"]

        await asyncio.gather(*(user(u) for u in uids))
        for guid, members in groups.items():
            await post(
                "/api/v1/groups",
                {"guid": guid, "name": guid, "type": "public", "owner": members[0]},
            )
            # One at a time: concurrent adds to one group lose members from the server's
            # member cache (ChatService.add_member writes back a stale snapshot).
            for u in members[1:]:
                await post(f"/api/v1/groups/{guid}/members", {"uid": u})
    return tokens


async def open_client(
    ws_url: str, idx: int, uid: str, token: str, tracker: Tracker | None
) -> Client:
    ws = await connect(
        ws_url,
        compression=None,
        ping_interval=None,
        open_timeout=60,
        close_timeout=2,
        max_queue=None,
        max_size=2**20,
    )
    await ws.send(json.dumps({"type": "auth", "id": "auth", "token": token}))
    first = loads(await asyncio.wait_for(ws.recv(), 30))
    if first.get("type") != "auth.ok":
        await ws.close()
        raise RuntimeError(f"auth failed for {uid}: {first}")
    client = Client(idx, uid, ws)
    if tracker is not None:
        client.reader = asyncio.create_task(_read(client, tracker))
    return client


async def _read(client: Client, tracker: Tracker) -> None:
    on_frame = tracker.on_frame
    uid = client.uid
    with contextlib.suppress(Exception):
        async for data in client.ws:
            on_frame(uid, data)


async def open_all(
    ws_url: str,
    uids: list[str],
    tokens: dict[str, str],
    tracker: Tracker | None,
    concurrency: int,
    times: array[float] | None = None,
) -> tuple[list[Client | None], int]:
    sem = asyncio.Semaphore(concurrency)
    urls = ws_url.split(",")
    clients: list[Client | None] = [None] * len(uids)
    errors = 0

    async def one(i: int) -> None:
        nonlocal errors
        async with sem:
            t0 = perf()
            url = urls[i % len(urls)]
            try:
                clients[i] = await open_client(url, i, uids[i], tokens[uids[i]], tracker)
            except Exception as exc:
                errors += 1
                if errors <= 3:
                    print(f"connect error: {exc!r}", file=sys.stderr)
                return
            if times is not None:
                times.append(perf() - t0)

    await asyncio.gather(*(one(i) for i in range(len(uids))))
    return clients, errors


async def close_all(clients: list[Client | None]) -> None:
    async def one(c: Client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.ws.close(), 3)
        if c.reader is not None:
            c.reader.cancel()

    await asyncio.gather(*(one(c) for c in clients if c is not None))


def frame(
    muid: str, receiver_type: str, receiver: str, text: str, category: str = "message"
) -> str:
    """A ``message.send`` frame; every part is a plain id or word, so no escaping is needed."""
    head = (
        f'{{"type":"message.send","id":"{muid}","muid":"{muid}",'
        f'"receiverType":"{receiver_type}","receiver":"{receiver}",'
    )
    if category == "custom":
        return f'{head}"category":"custom","messageType":"bench","data":{{"text":"{text}"}}}}'
    return f'{head}"category":"message","messageType":"text","text":"{text}"}}'


class CpuWatch:
    """Server and generator CPU seconds over a measured phase; ``trees``: more server-side
    processes counted with their descendants (other Parley processes, PostgreSQL, Redis)."""

    def __init__(self, server_pid: int, trees: tuple[int, ...] = ()) -> None:
        self.pid = server_pid
        self.trees = trees
        self.s0 = self._server_cpu()
        self._by0 = self.by_pid()
        self.g0 = self._self_cpu()
        self.t0 = perf()

    def by_pid(self) -> dict[int, float]:
        """CPU seconds so far of the server process and of each tree."""
        out = {self.pid: proc_cpu_s(self.pid) if self.pid else 0.0}
        out.update({t: tree_cpu_s(t) for t in self.trees})
        return out

    def _server_cpu(self) -> float:
        own = proc_cpu_s(self.pid) if self.pid else 0.0
        return own + sum(tree_cpu_s(t) for t in self.trees)

    @staticmethod
    def _self_cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def result(self) -> dict[str, Any]:
        wall = perf() - self.t0
        srv = self._server_cpu() - self.s0
        gen = self._self_cpu() - self.g0
        return {
            "wall_s": round(wall, 3),
            "server_cpu_s": round(srv, 3),
            "cpu_s_by_process": {
                str(p): round(c - self._by0.get(p, 0.0), 3) for p, c in self.by_pid().items()
            },
            "server_cpu_pct": round(100 * srv / wall, 1) if wall else None,
            "gen_cpu_s": round(gen, 3),
            "gen_cpu_pct": round(100 * gen / wall, 1) if wall else None,
        }


# ---------------------------------------------------------------- modes


async def run_messages(args: argparse.Namespace) -> dict[str, Any]:
    prefix = args.prefix
    n = args.conns - args.conns % 2 if args.mode == "pair" else args.conns
    uids = [f"{prefix}u{i}" for i in range(n)]
    groups: dict[str, list[str]] = {}
    # senders: (idx, receiver_type, receiver, nrecv, receivers)
    plan: list[tuple[int, str, str, int, list[str]]] = []
    if args.mode == "pair":
        plan = [(i, "user", uids[i ^ 1], 1, [uids[i ^ 1]]) for i in range(n)]
    else:
        g = args.group_size
        for gi in range(n // g):
            members = uids[gi * g : (gi + 1) * g]
            guid = f"{prefix}g{gi}"
            groups[guid] = members
            for k in range(min(args.senders, g)):
                others = [u for u in members if u != members[k]]
                plan.append((gi * g + k, "group", guid, g - 1, others))
        uids = uids[: (n // g) * g]
    tokens = await setup_users(args.base_url, args.api_key, uids, groups)
    tracker = Tracker(strict=args.strict)
    ws_url = args.base_url.replace("http", "ws", 1) + "/ws"
    if args.ws_urls:  # several processes: connection i goes to process i mod n
        ws_url = ",".join(u.replace("http", "ws", 1) + "/ws" for u in args.ws_urls.split(","))
    clients, errors = await open_all(ws_url, uids, tokens, tracker, args.concurrency)
    plan = [p for p in plan if clients[p[0]] is not None]
    if not plan:
        raise RuntimeError("no sender connected")
    await asyncio.sleep(0.5)
    # the senders walk the pool from offsets 131 apart, so a text comes back within a run
    # (the caches of a moderated server see it again); --distinct: a larger pool, and each
    # sender its own stretch of it, so no text is sent twice in a run of a few minutes
    texts = make_texts(args.seed, count=DISTINCT_POOL if args.distinct else TEXT_POOL)
    pool = len(texts)
    stride = pool // max(len(clients), 1) if args.distinct else 131
    seq = 0
    blocked_pct = args.blocked_pct
    cat = args.category

    def build(
        i: int, rtype: str, rcv: str, nrecv: int, rlist: list[str], t0: float, n_: int
    ) -> str:
        nonlocal seq
        seq += 1
        muid = f"{prefix}{seq}"
        text = texts[(i * stride + n_) % pool]
        blocked = blocked_pct > 0 and (seq * 37) % 100 < blocked_pct
        if blocked:
            text = f"{text} {BLOCK_WORD}"
        tracker.sent(muid, Rec(t0, i, nrecv, blocked), rlist)
        return frame(muid, rtype, rcv, text, cat)

    trees = tuple(int(p) for p in args.cpu_trees.split(",") if p) if args.cpu_trees else ()
    cpu = CpuWatch(args.server_pid, trees)
    t_start = perf()
    deadline = t_start + args.duration
    counts = [0] * len(clients)

    async def closed_sender(i: int, rtype: str, rcv: str, nrecv: int, rlist: list[str]) -> None:
        sem = tracker.windows[i] = asyncio.Semaphore(args.window)
        ws = clients[i].ws  # type: ignore[union-attr]
        while True:
            try:  # never wait past the deadline: a message that never completes must not hang us
                await asyncio.wait_for(sem.acquire(), max(deadline - perf(), 0.001))
            except TimeoutError:
                return
            now = perf()
            if now >= deadline:
                return
            text = build(i, rtype, rcv, nrecv, rlist, now, counts[i])
            counts[i] += 1
            await ws.send(text)

    async def open_scheduler() -> None:
        rate = args.rate
        k = 0
        nplan = len(plan)
        total = int(rate * args.duration)
        while k < total:
            due = min(total, int((perf() - t_start) * rate) + 1)
            while k < due:
                i, rtype, rcv, nrecv, rlist = plan[k % nplan]
                sched = t_start + k / rate
                text = build(i, rtype, rcv, nrecv, rlist, sched, counts[i])
                counts[i] += 1
                k += 1
                await clients[i].ws.send(text)  # type: ignore[union-attr]
            await asyncio.sleep(0.002)

    if args.rate > 0:
        senders = [asyncio.create_task(open_scheduler())]
    else:
        senders = [asyncio.create_task(closed_sender(*p)) for p in plan]
    await asyncio.gather(*senders, return_exceptions=True)
    t_send_end = perf()
    tracker.sending_over = True
    if tracker.pending:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.drained.wait(), args.drain)
    cpu_res = cpu.result()
    c = tracker.c
    elapsed = (tracker.last_done or perf()) - (tracker.first_send or t_start)
    completed = c["completed"]
    res: dict[str, Any] = {
        "senders": len(plan),
        "connected": sum(1 for x in clients if x is not None),
        "connect_errors": errors,
        "loop": "closed" if args.rate <= 0 else "open",
        "window": args.window if args.rate <= 0 else None,
        "target_rate": args.rate or None,
        "send_s": round(t_send_end - t_start, 3),
        "elapsed_s": round(elapsed, 3),
        "sent": c["sent"],
        "completed": completed,
        "incomplete": len(tracker.pending),
        "lost": tracker.lost(),
        "msgs_per_s": round(completed / elapsed, 1) if elapsed > 0 else 0,
        "sends_per_s": round(c["sent"] / (t_send_end - t_start), 1),
        "deliveries_per_s": round(c["delivered"] / elapsed, 1) if elapsed > 0 else 0,
        "ack_ms": summary(tracker.ack),
        "delivery_ms": summary(tracker.deliver),
        "verdict_ms": summary(tracker.verdict),
        "ack_to_verdict_ms": summary(tracker.ack_verdict),
        "counters": dict(c),
        "disapproved_by_rule": dict(tracker.reasons),
        **cpu_res,
    }
    srv_cpu = cpu_res["server_cpu_s"]
    res["msgs_per_server_cpu_s"] = round(completed / srv_cpu, 1) if srv_cpu else None
    res["deliveries_per_server_cpu_s"] = round(c["delivered"] / srv_cpu, 1) if srv_cpu else None
    await close_all(clients)
    return res


async def run_connections(args: argparse.Namespace) -> dict[str, Any]:
    uids = [f"{args.prefix}u{i}" for i in range(args.conns)]
    tokens = await setup_users(args.base_url, args.api_key, uids, {})
    ws_url = args.base_url.replace("http", "ws", 1) + "/ws"
    await asyncio.sleep(0.5)
    rss0 = proc_rss(args.server_pid) if args.server_pid else 0
    times: array[float] = array("d")
    cpu = CpuWatch(args.server_pid)
    clients, errors = await open_all(ws_url, uids, tokens, None, args.concurrency, times)
    cpu_res = cpu.result()
    ok = sum(1 for c in clients if c is not None)
    res: dict[str, Any] = {
        "connected": ok,
        "connect_errors": errors,
        "concurrency": args.concurrency,
        "connects_per_s": round(ok / cpu_res["wall_s"], 1),
        "connect_auth_ms": summary(times),
        "server_cpu_ms_per_connect": round(1e3 * cpu_res["server_cpu_s"] / max(ok, 1), 3),
        **cpu_res,
    }
    if args.mode == "idle":
        await asyncio.sleep(args.hold)
        rss1 = proc_rss(args.server_pid) if args.server_pid else 0
        res.update(
            server_rss0_mb=round(rss0 / 2**20, 1),
            server_rss1_mb=round(rss1 / 2**20, 1),
            server_bytes_per_conn=int((rss1 - rss0) / max(ok, 1)),
            gen_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        )
    await close_all(clients)
    return res


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", default="http://127.0.0.1:8799")
    p.add_argument("--api-key", default="")
    p.add_argument("--mode", default="pair", choices=["pair", "group", "idle", "connect"])
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--group-size", type=int, default=20)
    p.add_argument("--senders", type=int, default=2, help="senders per group")
    p.add_argument("--rate", type=float, default=0.0, help="open loop msgs/s in total; 0: closed")
    p.add_argument("--window", type=int, default=4, help="closed loop: in flight per sender")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of sending")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    p.add_argument("--concurrency", type=int, default=50, help="handshakes in flight")
    p.add_argument("--hold", type=float, default=2.0, help="idle: seconds before reading RSS")
    p.add_argument("--category", default="message", choices=["message", "custom"])
    p.add_argument("--blocked-pct", type=float, default=0.0, help="%% of texts with profanity")
    p.add_argument("--strict", action="store_true", help="track duplicates/leaks per receiver")
    p.add_argument("--server-pid", type=int, default=0)
    p.add_argument(
        "--ws-urls", default="", help="comma-separated base URLs: connection i to URL i mod n"
    )
    p.add_argument(
        "--cpu-trees", default="", help="comma-separated pids also counted as server CPU"
    )
    p.add_argument("--prefix", default="", help="uid/guid/muid prefix (default: random)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--distinct", action="store_true", help="no text sent twice (per-text caches miss)"
    )
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    host = args.base_url.split("//", 1)[-1].split(":")[0].split("/")[0]
    if host not in ("127.0.0.1", "localhost"):
        p.error("loopback only")
    if not args.prefix:
        args.prefix = f"b{random.randrange(36**5):05x}-"
    return args


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"label": args.label, "mode": args.mode, "conns": args.conns}
    if args.mode in ("pair", "group"):
        if args.mode == "group":
            res.update(group_size=args.group_size, senders_per_group=args.senders)
        res.update(await run_messages(args))
    else:
        res.update(await run_connections(args))
    res["loadavg"] = os.getloadavg()[0]
    return res


def main() -> None:
    args = parse_args()
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    res = runner(amain(args))
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
