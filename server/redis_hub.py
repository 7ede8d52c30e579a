"""The hub across processes (``--redis-url``): fan-out, typing, closes and cache invalidation
through Redis pub/sub. Imported only when ``--redis-url`` is set (the ``redis`` extra).

Past 400 lines on purpose: one process's side of the hub, whose publisher, subscriber and
heartbeat loops share the presence state and the Redis connection; the pure presence mirror
is ``presence_mirror.py``, the limits ``redis_limits.py``.

- Each process has an id (``node``) and listens on its own channel ``parley:n:<node>`` and on
  ``parley:<db>:invalidate`` (the database number: pub/sub channels span a Redis server's
  databases, so two deployments on one server must not hear each other's invalidations). It
  also publishes each invalidation on ``parley:invalidate``, with its database named, and
  applies what arrives there without one: a process of an earlier version, during a rolling
  upgrade.
- Presence: ``parley:p:<uid>`` is the set of nodes holding a connection of ``uid`` (added on a
  uid's first local connection, removed on its last). Each node keeps ``parley:alive:<node>``
  alive with a TTL; a node whose key expired is dead and dropped from the sets it is met in,
  as is a node whose channel has no subscriber when published to. Every change is also
  published on ``parley:<db>:presence``, and each node mirrors the other nodes' presence in
  memory (a snapshot of the sets when it subscribes, then those changes; a node that lost
  Redis sends its whole list again): sends look receivers up there, with no Redis round trip
  per member. Until the snapshot is read, they read the sets.
- ``send()`` delivers to the local connections at once, as ``LocalHub``, and queues the frame
  for a background publisher (bounded queue; never awaited), unless the mirror names no other
  node for any receiver. The publisher reads the
  presence of the receivers and publishes, per other node holding any of them, one message
  for the whole batch it took from the queue (the frames of a commit batch, typically): the
  frames and closes for that node in queue order, each frame's bytes once with the uids it
  is for there (``{"t": "b", "o": [["s", uids, droppable, nbytes] | ["c", uid, code,
  reason], ...]}``, a newline, the frames' bytes), cut at about ``PUBLISH_BYTES``. That node
  reads and parses it once and queues each frame, decoded once, on its local connections. A
  group message is thus published once per process, never once per member, and reaches each
  connection once; a batch costs one PUBLISH per process, not one per message. The
  publisher sends on a connection of its own, without a pipeline
  (``server/redis_direct.py``).
- ``connections(uid)`` gives the local connections and one stand-in whose ``close()`` asks
  every node holding ``uid`` to close its connections (a ban disconnects everywhere).
- ``rate_limiter()``: the send rate limit as one token bucket per user in Redis;
  ``typing_throttle()``: the typing cap per sender likewise; ``spacing()``: slow mode's last
  send per member and group (a key that expires).
- Redis unavailable: local delivery goes on; what the publisher could not send is dropped
  (the messages are stored: clients catch up from history) and logged; the loops reconnect
  with back-off, re-announce this node's presence, and drop every shared cache here and in
  the other processes (``*`` invalidations: some may have been missed meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.hub import Connection, LocalHub
from server.presence_mirror import PresenceMirror
from server.ratelimit import TypingThrottle
from server.redis_direct import DirectPipeline
from server.redis_limits import RedisRateLimiter, RedisSpacing

log = logging.getLogger(__name__)

PREFIX = "parley:"
#: Invalidations of processes of an earlier version (no database named; see the module doc).
INVALIDATE = PREFIX + "invalidate"
HEARTBEAT_EVERY = 2.0
NODE_TTL = 10  # seconds without a heartbeat before a node counts as dead
BATCH = 512

Handler = Callable[[str, str], Awaitable[None] | None]

# Queued work for the publisher: ("a"|"r", uid) presence, ("s", uids, text, droppable),
# ("c", uid, code, reason) close, ("i", kind, key) invalidation, ("n",) nothing (a round that
# re-announces presence after a reconnect).
_Item = tuple[Any, ...]


def _presence(uid: str) -> str:
    return f"{PREFIX}p:{uid}"


def _channel(node: str) -> str:
    return f"{PREFIX}n:{node}"


def _alive(node: str) -> str:
    return f"{PREFIX}alive:{node}"


#: About the most frame bytes one PUBLISH carries to a node (then the next one starts), well
#: under Redis's default output buffer limit for a subscriber (32 MB).
PUBLISH_BYTES = 1 << 20


class _Outgoing:
    """What one PUBLISH to a node carries: ``ops`` in queue order, the frames' bytes, the uids
    named (dropped from that node's presence if nobody listens)."""

    __slots__ = ("chunks", "ops", "size", "uids")

    def __init__(self) -> None:
        self.ops: list[list[Any]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.uids: dict[str, None] = {}


#: Seconds ``stop`` waits for each step (the loops to end, the presence cleanup, the close).
STOP_WAIT = 5.0


class RedisHub:
    """Implements ``Hub`` (local connections as ``LocalHub``) and ``Invalidator``."""

    def __init__(self, url: str, *, queue_size: int = 100_000, node: str | None = None) -> None:
        self.node = node or uuid.uuid4().hex[:16]
        self._url = url
        self._local = LocalHub()
        self._uids: dict[str, int] = {}  # local connections per uid
        self._out: asyncio.Queue[_Item] = asyncio.Queue(queue_size)
        self._handlers: dict[str, Handler] = {}
        self._dead: set[str] = set()
        self._resync = True  # (re)announce every local uid on the next round
        self._redis: aioredis.Redis | None = None
        self._direct: DirectPipeline | None = None  # the publisher's own connection
        self._tasks: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[None]] = set()
        self._dropped = 0
        self._last_warning = 0.0
        self.subscribed = asyncio.Event()
        #: The other nodes' presence (see the module doc); read once ``_mirrored``.
        self._mirror = PresenceMirror()
        self._mirrored = False
        self._presence_channel = PREFIX + "presence"
        self._invalidate_channel = PREFIX + "0:invalidate"
        self._db = 0

    # ----------------------------------------------------------------- the Hub protocol

    @property
    def count(self) -> int:
        return self._local.count

    def register(self, conn: Connection) -> None:
        self._local.register(conn)
        n = self._uids.get(conn.uid, 0)
        self._uids[conn.uid] = n + 1
        if n == 0:
            self._queue(("a", conn.uid))

    def unregister(self, conn: Connection) -> None:
        before = self._local.count
        self._local.unregister(conn)
        if self._local.count == before:
            return
        n = self._uids.get(conn.uid, 0) - 1
        if n > 0:
            self._uids[conn.uid] = n
        else:
            self._uids.pop(conn.uid, None)
            self._queue(("r", conn.uid))

    def send(
        self,
        uids: Iterable[str],
        text: str,
        *,
        exclude: Connection | None = None,
        droppable: bool = False,
    ) -> int:
        uids = list(uids)
        sent = self._local.send(uids, text, exclude=exclude, droppable=droppable)
        # Mirrored presence naming no other node for any receiver: nothing to publish, so
        # the publisher is not woken (a 1:1 pair on one process costs it nothing).
        if uids and (not self._mirrored or self._mirror.names_any(uids)):
            self._queue(("s", uids, text, droppable))
        return sent

    async def online(self, uid: str) -> bool:
        """Connected here, or announced by another node: read in the presence mirror once it
        is read (no round trip per receiver), else in Redis. Redis unreachable: only what
        this node knows (an offline push then may reach a user connected elsewhere)."""
        if await self._local.online(uid):
            return True
        if self._mirrored:
            return uid in self._mirror
        if self._redis is None:
            return False
        try:
            return bool(await self._redis.scard(_presence(uid)))
        except Exception as exc:
            self._warn("presence lookup failed", exc)
            return False

    def connections(self, uid: str) -> list[Connection]:
        def close_remote(code: int, reason: str) -> None:
            self._queue(("c", uid, code, reason))

        return [*self._local.connections(uid), Connection(uid, queue_size=1, close=close_remote)]

    # ----------------------------------------------------------------- Invalidator

    def publish(self, kind: str, key: str) -> None:
        self._queue(("i", kind, key))

    def rate_limiter(self, rate: float, burst: int) -> RedisRateLimiter:
        """The send rate limit, one token bucket per user in Redis for all processes."""
        return RedisRateLimiter(self, rate, burst, prefix=f"{PREFIX}rl:")

    def typing_throttle(self) -> TypingThrottle:
        """The typing throttle, its cap per sender (5 a second) in Redis for all processes."""
        return TypingThrottle(bucket=RedisRateLimiter(self, 5.0, 10, prefix=f"{PREFIX}rl:ty:"))

    def spacing(self) -> RedisSpacing:
        """Slow mode's last sends, in Redis for all processes."""
        return RedisSpacing(self, prefix=f"{PREFIX}slow:")

    # ----------------------------------------------------------------- lifecycle

    async def start(self, handlers: Mapping[str, Handler]) -> None:
        """Connect and start the background loops; ``handlers`` apply invalidations by kind."""
        self._handlers = dict(handlers)
        self._redis = aioredis.from_url(
            self._url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        # Pub/sub channels span a Redis server's databases: name the database in this one.
        db = self._redis.connection_pool.connection_kwargs.get("db", 0)
        self._db = int(db)
        self._presence_channel = f"{PREFIX}{db}:presence"
        self._invalidate_channel = f"{PREFIX}{db}:invalidate"
        self._tasks = [
            asyncio.create_task(self._publisher(), name="redis-hub-publisher"),
            asyncio.create_task(self._subscriber(), name="redis-hub-subscriber"),
            asyncio.create_task(self._heartbeat(), name="redis-hub-heartbeat"),
        ]
        # Serve once subscribed (or after a while when Redis is not there yet: local delivery
        # works without it, and the loops keep trying).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), 5)

    async def stop(self) -> None:
        """Stop the loops and leave the presence sets; bounded (``STOP_WAIT`` per step), so a
        shutdown never hangs on a Redis call that does not return."""
        tasks = [*self._tasks, *self._pending]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
            if stuck:
                log.warning("redis hub: %d tasks did not stop in %s s", len(stuck), STOP_WAIT)
        self._tasks = []
        r, self._redis = self._redis, None
        if r is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                pipe = r.pipeline(transaction=False)
                for uid in self._uids:
                    pipe.srem(_presence(uid), self.node)
                pipe.delete(_alive(self.node))
                pipe.srem(PREFIX + "nodes", self.node)
                await asyncio.wait_for(pipe.execute(), STOP_WAIT)
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(r.aclose(), STOP_WAIT)
        direct, self._direct = self._direct, None
        if direct is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(direct.close(), STOP_WAIT)

    # ----------------------------------------------------------------- internals

    def _queue(self, item: _Item) -> None:
        try:
            self._out.put_nowait(item)
        except asyncio.QueueFull:
            self._dropped += 1
            self._warn(f"redis hub queue full: {self._dropped} frames dropped so far")

    @property
    def client(self) -> Any:
        """The Redis client, or None while it is not connected (``redis_limits.RedisLink``)."""
        return self._redis

    def warn(self, text: str, exc: BaseException | None = None) -> None:
        """Log ``text`` at most every 5 seconds (``redis_limits.RedisLink``)."""
        self._warn(text, exc)

    def _warn(self, text: str, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if now - self._last_warning >= 5.0:
            self._last_warning = now
            log.warning("%s%s", text, f": {exc!r}" if exc is not None else "")

    async def _publisher(self) -> None:
        backoff = 0.1
        while True:
            batch = [await self._out.get()]
            while len(batch) < BATCH and not self._out.empty():
                batch.append(self._out.get_nowait())
            try:
                await self._flush(batch)
                if backoff > 0.1:
                    log.warning("redis reachable again; cross-process delivery resumed")
                backoff = 0.1
            except (RedisError, OSError) as exc:
                # Presence is re-announced on recovery; frames are dropped (stored anyway).
                self._resync = True
                self._dropped += sum(1 for item in batch if item[0] in ("s", "c", "i"))
                self._warn("redis unavailable; cross-process delivery paused", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:  # a bug must not stop cross-process delivery for good
                log.exception("redis hub publisher failed on a batch; dropped")

    async def _flush(self, batch: list[_Item]) -> None:
        r = self._redis
        assert r is not None
        pipe = r.pipeline(transaction=False)
        resync, self._resync = self._resync, False  # set again on failure (the caller)
        if resync:
            for uid in self._uids:
                pipe.sadd(_presence(uid), self.node)
        added: list[str] = []
        removed: list[str] = []
        for item in batch:
            if item[0] == "a":
                pipe.sadd(_presence(item[1]), self.node)
                added.append(item[1])
            elif item[0] == "r" and item[1] not in self._uids:
                pipe.srem(_presence(item[1]), self.node)
                removed.append(item[1])
        if resync:  # the whole list: the others replace what they knew of this node
            body = {"n": self.node, "reset": True, "a": list(self._uids)}
            pipe.publish(self._presence_channel, orjson.dumps(body))
        elif added or removed:
            body = {"n": self.node, "a": added, "r": removed}
            pipe.publish(self._presence_channel, orjson.dumps(body))
        mirrored = self._mirrored
        wanted: list[str] = []
        if not mirrored:  # the receivers' presence, read from the sets (no mirror yet)
            seen: set[str] = set()
            for item in batch:
                targets = item[1] if item[0] == "s" else [item[1]] if item[0] == "c" else ()
                for uid in targets:
                    if uid not in seen:
                        seen.add(uid)
                        wanted.append(uid)
        marker = len(pipe)
        for uid in wanted:
            pipe.smembers(_presence(uid))
        results = await pipe.execute() if len(pipe) else []
        # Who is where, per other node: the mirror itself, or what the sets said.
        by_node: dict[str, set[str]] = self._mirror.by_node
        if not mirrored:
            by_node = {}
            for i, uid in enumerate(wanted):
                for raw in results[marker + i]:
                    node = raw.decode() if isinstance(raw, bytes) else str(raw)
                    if node != self.node:
                        by_node.setdefault(node, set()).add(uid)
        stale = [(node, list(uids)) for node, uids in by_node.items() if node in self._dead]
        live = [(node, uids) for node, uids in by_node.items() if node not in self._dead]
        # One PUBLISH per other node for the whole batch: its frames and closes in queue
        # order (per-conversation order holds), each frame encoded once whatever the number
        # of its receivers there, and one message for that node to read and parse.
        # A node's message grows to about ``PUBLISH_BYTES``, then the next one starts.
        per_node: dict[str, _Outgoing] = {}
        full: list[tuple[str, _Outgoing]] = []
        invalidations: list[bytes] = []
        for item in batch:
            kind = item[0]
            if kind == "s":
                _, uids, text, droppable = item
                data: bytes | None = None
                for node, present in live:
                    # One set intersection per node, in C: no Python step per member.
                    receivers = list(present.intersection(uids))
                    if not receivers:
                        continue
                    if data is None:
                        data = text.encode()
                    out = per_node.get(node)
                    if out is None or out.size >= PUBLISH_BYTES:
                        if out is not None:
                            full.append((node, out))
                        out = per_node[node] = _Outgoing()
                    out.ops.append(["s", receivers, droppable, len(data)])
                    out.chunks.append(data)
                    out.size += len(data)
                    out.uids.update(dict.fromkeys(receivers))
            elif kind == "c":
                _, uid, code, reason = item
                for node, present in live:
                    if uid not in present:
                        continue
                    out = per_node.get(node)
                    if out is None:
                        out = per_node[node] = _Outgoing()
                    out.ops.append(["c", uid, code, reason])
                    out.uids[uid] = None
            elif kind == "i":
                _, what, key = item
                invalidations.append(
                    orjson.dumps({"n": self.node, "k": what, "y": key, "db": self._db})
                )
        commands: list[tuple[Any, ...]] = []
        published: list[tuple[str, Iterable[str]]] = []  # (node, uids) per PUBLISH
        for node, out in [*full, *per_node.items()]:
            head = orjson.dumps({"t": "b", "o": out.ops})
            commands.append(("PUBLISH", _channel(node), b"".join((head, b"\n", *out.chunks))))
            published.append((node, out.uids))
        for note in invalidations:
            for channel in (self._invalidate_channel, INVALIDATE):
                commands.append(("PUBLISH", channel, note))
                published.append(("", ()))
        for node, uids in stale:  # a dead node: dropped from the sets and the mirror
            for uid in uids:
                commands.append(("SREM", _presence(uid), node))
                self._mirror.discard(uid, node)
        if not commands:
            return
        if self._direct is None:
            self._direct = DirectPipeline(r)
        counts = await self._direct.run(commands)
        # A node channel nobody listens on: that node is gone (or reconnecting: it announces
        # its presence again when it is back).
        cleanup = r.pipeline(transaction=False)
        for (node, named), listeners in zip(published, counts, strict=False):
            if node and listeners == 0:
                for gone in named:
                    cleanup.srem(_presence(gone), node)
                    self._mirror.discard(gone, node)
        if len(cleanup):
            await cleanup.execute()

    async def _subscriber(self) -> None:
        backoff = 0.1
        while True:
            r = self._redis
            assert r is not None
            pubsub = r.pubsub(ignore_subscribe_messages=True)
            try:
                self._mirrored = False
                await pubsub.subscribe(
                    _channel(self.node),
                    self._invalidate_channel,
                    INVALIDATE,
                    self._presence_channel,
                )
                self._resync = True  # missed presence changes while away
                self._queue(("n",))  # a round of the publisher re-announces presence
                # Subscribed first, then the snapshot: a change made meanwhile is in the
                # snapshot or arrives after it (applying it twice changes nothing).
                self._mirror = await self._snapshot(r)
                self._mirrored = True
                if self.subscribed.is_set():
                    # Back after an outage: invalidations may have been missed, here and
                    # (those this process could not publish) elsewhere. Drop every cache.
                    for kind in self._handlers:
                        self._invalidate(kind, "*")
                        self.publish(kind, "*")
                self.subscribed.set()
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._receive(message["channel"], message["data"])
            except Exception as exc:  # RedisError, OSError; anything else is logged too
                if isinstance(exc, RedisError | OSError):
                    self._warn("redis subscription lost; reconnecting", exc)
                else:
                    log.exception("redis hub subscriber failed; reconnecting")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _snapshot(self, r: aioredis.Redis) -> PresenceMirror:
        """Every other node's presence, read from the sets."""
        mirror = PresenceMirror()
        async for key in r.scan_iter(match=_presence("*"), count=1000):
            raw_key = key.decode() if isinstance(key, bytes) else str(key)
            uid = raw_key[len(_presence("")) :]
            for n in await r.smembers(raw_key):
                node = n.decode() if isinstance(n, bytes) else str(n)
                if node != self.node:
                    mirror.add(uid, node)
        return mirror

    def _presence_changed(self, body: dict[str, Any]) -> None:
        node = str(body["n"])
        if node == self.node:
            return
        # A node that publishes is alive (back after losing Redis): its users are routed
        # to it again, not dropped as a dead node's before the next heartbeat says so.
        self._dead.discard(node)
        mirror = self._mirror
        if body.get("reset"):
            mirror.drop_node(node)
        for uid in body.get("a") or ():
            mirror.add(uid, node)
        for uid in body.get("r") or ():
            mirror.discard(uid, node)

    def _receive(self, channel: bytes, data: bytes) -> None:
        try:
            name = channel.decode()
            if name == self._presence_channel:
                self._presence_changed(orjson.loads(data))
                return
            if name == self._invalidate_channel or name == INVALIDATE:
                body = orjson.loads(data)
                # On the shared channel, only an earlier version's note (no database named):
                # a current process's note arrives on its database's channel.
                if body.get("n") != self.node and (name != INVALIDATE or "db" not in body):
                    self._invalidate(str(body.get("k")), str(body.get("y")))
                return
            head, _, text = data.partition(b"\n")
            frame = orjson.loads(head)
            if frame["t"] == "b":
                self._receive_batch(frame["o"], text)
            elif frame["t"] == "s":  # one frame (a process of an earlier version)
                self._local.send(frame["u"], text.decode(), droppable=bool(frame["d"]))
            elif frame["t"] == "c":
                for conn in self._local.connections(frame["u"]):
                    conn.close(int(frame["c"]), str(frame["r"]))
        except Exception:
            log.exception("bad message on %r", channel)

    def _receive_batch(self, ops: list[list[Any]], payload: bytes) -> None:
        """A batch from another node: ``["s", uids, droppable, n]`` takes the next ``n`` bytes
        of ``payload`` as the frame for those local uids (decoded once for all of them);
        ``["c", uid, code, reason]`` closes that uid's local connections."""
        at = 0
        local = self._local
        for op in ops:
            if op[0] == "s":
                end = at + op[3]
                local.send(op[1], payload[at:end].decode(), droppable=bool(op[2]))
                at = end
            elif op[0] == "c":
                for conn in local.connections(op[1]):
                    conn.close(int(op[2]), str(op[3]))

    def _invalidate(self, kind: str, key: str) -> None:
        handler = self._handlers.get(kind)
        if handler is None:
            return
        result = handler(kind, key)
        if inspect.isawaitable(result):

            async def run(awaitable: Awaitable[None]) -> None:
                try:
                    await awaitable
                except Exception:
                    log.exception("applying invalidation %s %s", kind, key)

            task = asyncio.create_task(run(result))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _heartbeat(self) -> None:
        while True:
            r = self._redis
            assert r is not None
            try:
                pipe = r.pipeline(transaction=False)
                pipe.set(_alive(self.node), b"1", ex=NODE_TTL)
                pipe.sadd(PREFIX + "nodes", self.node)
                pipe.smembers(PREFIX + "nodes")
                *_, nodes = await pipe.execute()
                others = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in nodes)
                others = [n for n in others if n != self.node]
                if others:
                    alive = await r.mget([_alive(n) for n in others])
                    dead = {n for n, v in zip(others, alive, strict=True) if v is None}
                    if dead:
                        await r.srem(PREFIX + "nodes", *dead)
                    # One whose key is back (it lost Redis a while) is alive again.
                    self._dead = (self._dead - set(others)) | dead
                    if len(self._dead) > 10_000:
                        self._dead = dead
                if self._resync:
                    self._queue(("n",))
            except Exception as exc:  # RedisError, OSError; anything else too: keep beating
                self._resync = True
                self._warn("redis heartbeat failed", exc)
            await asyncio.sleep(HEARTBEAT_EVERY)
