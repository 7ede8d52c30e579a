"""Moderation jobs shared by the processes of a deployment (``--redis-url``): a Redis Streams
consumer group. Imported only when ``--redis-url`` is set (the ``redis`` extra).

- ``put`` adds ``{m: message id, r: revision, v: a verdict judged on the send path or "",
  t: wall time}`` to the stream ``parley:mod:jobs`` (``JobQueue``).
- Every process that takes jobs (``parley serve`` unless ``--no-moderation-jobs``, and
  ``parley moderation-worker``) reads the group ``parley:mod`` under its own consumer name,
  holding at most ``limit`` jobs, and hands each to ``ModerationService.take``. Once the
  verdict is applied the job is acknowledged and deleted (``XACK``, ``XDEL``): the stream
  holds only the backlog and the jobs in progress.
- A job in progress is touched (``XCLAIM ... JUSTID``) at least every ``claim_idle / 3``
  seconds (and every 2 s), so its idle time stays low while its consumer lives. As often each
  taking process also claims (``XAUTOCLAIM``) the jobs idle for more than ``claim_idle``: those
  of a consumer that died (SIGKILL, a lost machine) or whose handler failed. Running a job
  twice is harmless: the verdict's write is conditional on the message being pending at the
  job's revision (``gate.py``, ``services/verdicts.py``), a review entry is made once.
- Re-queue: pending messages without a job in the stream are queued again, by one process at
  a time (a lock key): when a process starts, when the group had to be created (a Redis that
  restarted without persistence lost the stream), and every ``SWEEP`` seconds for messages
  pending longer than that (a process that died holding jobs it ran in-process while Redis
  was away).
- A job that keeps failing (its handler raised, or its consumer died, ``ATTEMPTS`` times: a
  message the pipeline cannot judge) is not taken again: ``give_up`` holds its message for a
  moderator (the review queue, rule ``moderation_failed``) and the job is acknowledged.
- Redis unavailable: ``put`` returns False and the caller runs the job in its own pipeline;
  the loops retry with back-off and resume when Redis is back.
- Stopping (SIGTERM): the jobs this process took and did not finish are marked idle
  (``XCLAIM ... IDLE``), so another process takes them at once; consumers of the group that
  hold nothing and were idle for an hour are removed during the sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from moderation.types import Action, Detection, Match, Verdict, VerdictStatus
from server.models import Message

log = logging.getLogger(__name__)

STREAM = "parley:mod:jobs"
GROUP = "parley:mod"
LOCK = "parley:mod:requeue"
#: Seconds between sweeps for pending messages that lost their job (see the module doc).
SWEEP = 60.0
READ_BLOCK_MS = 1000
#: Deliveries of one job (first read and each claim after a failure) before it is given up.
ATTEMPTS = 5


#: ``ModerationService.give_up(message_id, rev, attempts)``: hold a message no job could judge.
GiveUp = Callable[[int, int, int], Awaitable[None]]


class Taker(Protocol):
    """``ModerationService.take``."""

    def __call__(
        self,
        message_id: int,
        rev: int,
        verdict: Verdict | None,
        done: Callable[[bool], Awaitable[None]],
        *,
        age: float = ...,
    ) -> Awaitable[None]: ...


Requeuer = Callable[[Collection[int], int], Awaitable[int]]


def verdict_to_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "s": verdict.status.value,
        "m": [
            [
                m.rule_id,
                m.rule_name,
                m.revision,
                m.reason,
                m.confidence,
                [a.value for a in m.actions],
            ]
            for m in verdict.matches
        ],
        "a": [a.value for a in verdict.actions],
        "d": [[d.detector, d.category, d.confidence, d.reason] for d in verdict.detections],
    }


def verdict_from_json(body: dict[str, Any]) -> Verdict:
    return Verdict(
        status=VerdictStatus(body["s"]),
        matches=tuple(
            Match(str(r), str(n), int(v), str(why), float(c), tuple(Action(a) for a in acts))
            for r, n, v, why, c, acts in body["m"]
        ),
        actions=tuple(Action(a) for a in body["a"]),
        detections=tuple(Detection(str(a), str(b), float(c), str(d)) for a, b, c, d in body["d"]),
    )


class RedisJobs:
    """Implements ``gate.JobQueue``; see the module doc."""

    def __init__(
        self,
        url: str,
        *,
        take: bool,
        claim_idle: float,
        limit: int = 128,
        consumer: str | None = None,
    ) -> None:
        self.consumer = consumer or uuid.uuid4().hex[:16]
        self._url = url
        self._taking = take
        self._claim_idle = max(claim_idle, 0.3)
        self._limit = max(limit, 1)
        self._redis: aioredis.Redis | None = None
        self._taker: Taker | None = None
        self._requeuer: Requeuer | None = None
        self._give_up: GiveUp | None = None
        self._held: set[str] = set()
        self._released: set[str] = set()  # failed here, not acknowledged: taken again later
        self._room = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._requeue_due = True  # at start: once for the deployment (the lock decides)
        self._last_warning = 0.0
        self.put_failures = 0

    # ----------------------------------------------------------------- JobQueue

    async def put(self, message: Message, verdict: Verdict | None) -> bool:
        r = self._redis
        if r is None:
            return False
        fields: dict[Any, Any] = {
            "m": message.id,
            "r": message.rev,
            "v": orjson.dumps(verdict_to_json(verdict)) if verdict is not None else b"",
            "t": repr(time.time()),
        }
        try:
            await r.xadd(STREAM, fields)
        except (RedisError, OSError) as exc:
            self.put_failures += 1
            self._warn("redis unavailable; moderation jobs run in this process", exc)
            return False
        return True

    # ----------------------------------------------------------------- lifecycle

    async def start(self, taker: Taker, requeuer: Requeuer, give_up: GiveUp | None = None) -> None:
        """Connect and start the loops; ``taker`` runs a job, ``requeuer(skip, min_age)``
        queues again the pending messages not in ``skip`` pending for ``min_age`` seconds,
        ``give_up`` holds the message of a job that failed ``ATTEMPTS`` times."""
        self._taker = taker
        self._requeuer = requeuer
        self._give_up = give_up
        self._redis = aioredis.from_url(
            self._url,
            socket_connect_timeout=2,
            socket_timeout=READ_BLOCK_MS / 1000 + 5,
            health_check_interval=10,
        )
        with contextlib.suppress(RedisError, OSError):
            await self._ensure_group()
        self._tasks = [asyncio.create_task(self._housekeeping(), name="moderation-jobs-claim")]
        if self._taking:
            self._tasks.append(asyncio.create_task(self._reader(), name="moderation-jobs-read"))

    async def stop_taking(self) -> None:
        """Take no more jobs (first step of a shutdown; the pipeline stops next)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def stop(self) -> None:
        """Hand the jobs taken and not finished to the other processes, and disconnect."""
        await self.stop_taking()
        r, self._redis = self._redis, None
        if r is None:
            return
        unfinished: list[Any] = sorted(self._held | self._released)
        if unfinished:
            with contextlib.suppress(RedisError, OSError):
                idle = 86_400_000  # a day: past any process's claim_idle
                await r.xclaim(STREAM, GROUP, self.consumer, 0, unfinished, idle=idle, justid=True)
                log.info(
                    "left %d unfinished moderation jobs to the other processes", len(unfinished)
                )
        await r.aclose()

    # ----------------------------------------------------------------- internals

    def _warn(self, text: str, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            log.warning("%s%s", text, f": {exc!r}" if exc is not None else "")

    async def _ensure_group(self) -> None:
        r = self._redis
        assert r is not None
        try:
            await r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return
        # The group is new: a new deployment, or a Redis that lost its data. Pending
        # messages have no job: queue them again.
        self._requeue_due = True

    async def _reader(self) -> None:
        backoff = 0.1
        while True:
            r = self._redis
            assert r is not None
            try:
                free = self._limit - len(self._held)
                if free <= 0:
                    self._room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._room.wait(), 1.0)
                    continue
                got: Any = await r.xreadgroup(
                    GROUP, self.consumer, {STREAM: ">"}, count=free, block=READ_BLOCK_MS
                )
                for _stream, entries in got or ():
                    for entry_id, fields in entries:
                        await self._take(entry_id, fields)
                if backoff > 0.1:
                    log.warning("redis reachable again; taking moderation jobs")
                backoff = 0.1
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the stream (a restart without data)
                    with contextlib.suppress(RedisError, OSError):
                        await self._ensure_group()
                    continue
                log.exception("reading moderation jobs failed")
                await asyncio.sleep(1.0)
            except (RedisError, OSError) as exc:
                self._warn("redis unavailable; not taking moderation jobs", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("taking moderation jobs failed")
                await asyncio.sleep(1.0)

    async def _take(self, entry: bytes | str, fields: Any) -> None:
        eid = entry.decode() if isinstance(entry, bytes) else str(entry)
        if eid in self._held:
            return
        self._released.discard(eid)
        taker = self._taker
        assert taker is not None
        try:
            assert fields is not None
            message_id, rev = int(fields[b"m"]), int(fields[b"r"])
            raw = fields.get(b"v") or b""
            verdict = verdict_from_json(orjson.loads(raw)) if raw else None
            age = time.time() - float(fields.get(b"t") or 0)
        except Exception:
            log.exception("malformed moderation job %s dropped: %r", eid, fields)
            await self._ack(eid)
            return
        self._held.add(eid)

        async def done(ok: bool) -> None:
            self._held.discard(eid)
            self._room.set()
            if ok:
                await self._ack(eid)
            else:  # left pending in the group; claimed again once idle (a retry)
                self._released.add(eid)

        try:
            await taker(message_id, rev, verdict, done, age=age)
        except Exception:
            log.exception(
                "moderation job %s (message %d) failed; it will be retried", eid, message_id
            )
            self._held.discard(eid)

    async def _ack(self, eid: str) -> None:
        r = self._redis
        if r is None:
            return
        try:
            pipe = r.pipeline(transaction=False)
            pipe.xack(STREAM, GROUP, eid)
            pipe.xdel(STREAM, eid)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            # Claimed again later and found decided: only acknowledged then.
            self._warn("redis unavailable; a moderation job stays unacknowledged", exc)

    async def _housekeeping(self) -> None:
        every = min(self._claim_idle / 3, 2.0)
        last_sweep = time.monotonic()
        while True:
            r = self._redis
            assert r is not None
            try:
                if self._requeue_due:
                    self._requeue_due = False
                    await self._requeue(min_age=0)
                elif time.monotonic() - last_sweep >= SWEEP:
                    last_sweep = time.monotonic()
                    await self._requeue(min_age=int(SWEEP))
                    await self._forget_gone_consumers(r)
                if self._taking:
                    await self._claim(r)
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._ensure_group()
                else:
                    log.exception("moderation job housekeeping failed")
            except (RedisError, OSError) as exc:
                self._warn("redis unavailable; moderation jobs not claimed", exc)
            except Exception:
                log.exception("moderation job housekeeping failed")
            await asyncio.sleep(every)

    async def _claim(self, r: aioredis.Redis) -> None:
        held = list(self._held)
        if held:  # still alive and working on these: reset their idle time
            ids: list[Any] = list(held)
            await r.xclaim(STREAM, GROUP, self.consumer, 0, ids, justid=True)
        free = self._limit - len(self._held)
        if free <= 0:
            return
        got: Any = await r.xautoclaim(
            STREAM, GROUP, self.consumer, int(self._claim_idle * 1000), "0-0", count=free
        )
        entries = [(e, f) for e, f in (got[1] if len(got) > 1 else []) if f is not None]
        if not entries:  # (a job deleted meanwhile comes back without fields: it is done)
            return
        first, last = entries[0][0], entries[-1][0]
        pending: Any = await r.xpending_range(
            STREAM, GROUP, min=first, max=last, count=len(entries) + len(held) + 16,
            consumername=self.consumer,
        )  # fmt: skip
        tries = {_text(p["message_id"]): int(p["times_delivered"]) for p in pending}
        for entry_id, fields in entries:
            attempts = tries.get(_text(entry_id), 0)
            if attempts > ATTEMPTS and self._give_up is not None:
                await self._abandon(_text(entry_id), fields, attempts - 1)
                continue
            log.info("took over moderation job %s from a consumer gone idle", entry_id)
            await self._take(entry_id, fields)

    async def _abandon(self, eid: str, fields: Any, attempts: int) -> None:
        """Hold the message of a job tried ``attempts`` times for a moderator; acknowledge it."""
        assert self._give_up is not None
        try:
            message_id, rev = int(fields[b"m"]), int(fields[b"r"])
        except Exception:
            log.exception("malformed moderation job %s dropped: %r", eid, fields)
            await self._ack(eid)
            return
        log.error(
            "moderation job %s (message %d) failed %d times; held for a moderator",
            eid, message_id, attempts,
        )  # fmt: skip
        await self._give_up(message_id, rev, attempts)
        self._released.discard(eid)
        await self._ack(eid)

    async def _forget_gone_consumers(self, r: aioredis.Redis) -> None:
        """Remove consumers that hold no job and were idle for an hour (processes gone)."""
        consumers: Any = await r.xinfo_consumers(STREAM, GROUP)
        for c in consumers:
            name = c.get("name")
            name = name.decode() if isinstance(name, bytes) else str(name)
            if name != self.consumer and not c.get("pending") and c.get("idle", 0) > 3_600_000:
                await r.xgroup_delconsumer(STREAM, GROUP, name)

    async def _requeue(self, *, min_age: int) -> None:
        r = self._redis
        requeuer = self._requeuer
        assert r is not None and requeuer is not None
        lock_for = int(max(SWEEP / 2, self._claim_idle))
        if not await r.set(LOCK, self.consumer, nx=True, ex=lock_for):
            return  # another process is at it (or just did it)
        queued: set[int] = set()
        start = "-"
        while True:
            chunk: Any = await r.xrange(STREAM, min=start, max="+", count=1000)
            for _entry, fields in chunk:
                with contextlib.suppress(KeyError, ValueError, TypeError):
                    queued.add(int(fields[b"m"]))
            if len(chunk) < 1000:
                break
            last = chunk[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else str(last))
        n = await requeuer(queued, min_age)
        if n:
            log.info("queued %d pending moderation jobs again", n)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
