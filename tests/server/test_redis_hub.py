"""RedisHub on a real Redis (``tests/redis_server.py``): two hubs in one event loop stand for
two processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from server.errors import RateLimited
from server.hub import Connection
from server.redis_hub import RedisHub
from tests.redis_server import redis_server


def conn(uid: str, closed: list[tuple[str, int]] | None = None) -> Connection:
    def close(code: int, reason: str) -> None:
        if closed is not None:
            closed.append((uid, code))

    return Connection(uid, queue_size=16, close=close)


async def eventually(check: object, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def hubs() -> AsyncIterator[tuple[RedisHub, RedisHub, list[tuple[str, str]]]]:
    url = redis_server().url(5)
    seen: list[tuple[str, str]] = []

    def record(kind: str, key: str) -> None:
        seen.append((kind, key))

    a, b = RedisHub(url), RedisHub(url)
    await a.start({})
    await b.start({"members": record})
    try:
        yield a, b, seen
    finally:
        await a.stop()
        await b.stop()


async def test_group_frame_is_published_once_per_process(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    a, b, _ = hubs
    sender, local_member = conn("s"), conn("m0")
    remote = [conn("m1"), conn("m2"), conn("m2"), conn("m3")]
    for c in (sender, local_member):
        a.register(c)
    for c in remote:
        b.register(c)
    spy = aioredis.from_url(redis_server().url(5))
    pubsub = spy.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"parley:n:{b.node}")
    await asyncio.sleep(0.2)  # presence written
    assert a.send(["s", "m0", "m1", "m2", "m3", "nobody"], "frame-1", exclude=sender) == 1
    await eventually(lambda: all(c.queue.qsize() == 1 for c in remote))
    assert local_member.queue.get_nowait() == "frame-1" and sender.queue.empty()
    assert [c.queue.get_nowait() for c in remote] == ["frame-1"] * 4
    published = []
    deadline = asyncio.get_running_loop().time() + 0.5
    while asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(timeout=0.1)
        if msg is not None:
            published.append(msg["data"])
    assert len(published) == 1  # one publish for B's three members
    head, _, text = published[0].partition(b"\n")
    ((kind, uids, droppable, size),) = orjson.loads(head)["o"]
    assert (kind, sorted(uids), droppable, size) == ("s", ["m1", "m2", "m3"], False, 7)
    assert text == b"frame-1"
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await spy.aclose()


async def test_close_and_invalidation_reach_the_other_process(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    a, b, seen = hubs
    closed: list[tuple[str, int]] = []
    b.register(conn("banned", closed))
    await asyncio.sleep(0.2)
    for c in a.connections("banned"):
        c.close(4403, "banned")
    await eventually(lambda: closed == [("banned", 4403)])
    a.publish("members", "g1")
    await eventually(lambda: seen == [("members", "g1")])
    b.publish("members", "g2")  # not applied by its own publisher
    await asyncio.sleep(0.2)
    assert seen == [("members", "g1")]


async def test_unregistered_user_is_no_longer_published_to(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    a, b, _ = hubs
    c = conn("leaver")
    b.register(c)
    await asyncio.sleep(0.2)
    spy = aioredis.from_url(redis_server().url(5))
    assert await spy.smembers("parley:p:leaver") == {b.node.encode()}
    b.unregister(c)
    await eventually(lambda: b._out.empty())
    await asyncio.sleep(0.1)
    assert await spy.smembers("parley:p:leaver") == set()
    await spy.aclose()


async def test_a_dead_process_is_dropped_from_presence() -> None:
    url = redis_server().url(6)
    a, b = RedisHub(url), RedisHub(url)
    await a.start({})
    await b.start({})
    spy = aioredis.from_url(url)
    try:
        b.register(conn("orphan"))
        await asyncio.sleep(0.2)
        assert await spy.smembers("parley:p:orphan") == {b.node.encode()}
        for task in b._tasks:  # B dies: no goodbye, its presence stays behind
            task.cancel()
        await asyncio.gather(*b._tasks, return_exceptions=True)
        b._tasks = []
        await asyncio.sleep(0.1)
        a.send(["orphan"], "frame")  # nobody listens on B's channel: dropped from the set
        for _ in range(100):
            if await spy.smembers("parley:p:orphan") == set():
                break
            await asyncio.sleep(0.02)
        assert await spy.smembers("parley:p:orphan") == set()
    finally:
        await a.stop()
        await b.stop()
        await spy.aclose()


async def test_a_lost_publisher_connection_is_replaced_and_frames_arrive_once(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """The publisher sends on a connection of its own (no pool checkout per round): when
    Redis drops it (a restart, a timeout, an administrator), the next round reconnects and
    its frames still arrive, once each."""
    a, b, _ = hubs
    c = Connection("far", queue_size=64, close=lambda code, reason: None)
    b.register(c)
    await eventually(lambda: a._mirror.by_uid.get("far") == {b.node})
    a.send(["far"], "before")
    await eventually(lambda: c.queue.qsize() == 1)
    assert a._direct is not None
    port = a._direct.local_port()
    spy = aioredis.from_url(redis_server().url(5))
    try:
        clients = (await spy.execute_command("CLIENT", "LIST")).decode().splitlines()
        (mine,) = [line for line in clients if f" addr=127.0.0.1:{port} " in f" {line} "]
        client_id = mine.split("id=", 1)[1].split()[0]
        assert await spy.execute_command("CLIENT", "KILL", "ID", client_id) == 1
        await asyncio.sleep(0.1)
        for i in range(3):
            a.send(["far"], f"after {i}")
        await eventually(lambda: c.queue.qsize() == 4)
        await asyncio.sleep(0.3)  # nothing arrives twice
        assert [c.queue.get_nowait() for _ in range(c.queue.qsize())] == [
            "before",
            "after 0",
            "after 1",
            "after 2",
        ]
        assert a._direct.local_port() != port  # a new connection
    finally:
        await spy.aclose()


def test_only_the_redis_hub_imports_redis() -> None:
    """The embedded default never loads Redis code: only server/redis_hub.py,
    server/redis_jobs.py, the hub's limiters (server/redis_limits.py) and its publisher's
    connection (server/redis_direct.py) import redis; only the composition root imports the
    first two, when --redis-url is set, and only the hub the last two."""
    from tests.test_imports import ROOT, imports

    users = {
        str(path.relative_to(ROOT))
        for package in ("server", "moderation", "client")
        for path in (ROOT / package).rglob("*.py")
        if any(name.split(".")[0] == "redis" for name in imports(path))
    }
    assert users == {
        "server/redis_hub.py",
        "server/redis_jobs.py",
        "server/redis_limits.py",
        "server/redis_direct.py",
    }
    only_importer = {
        "server.redis_hub": "server/app.py",
        "server.redis_jobs": "server/app.py",
        "server.redis_limits": "server/redis_hub.py",
        "server.redis_direct": "server/redis_hub.py",
    }
    for module, importer in only_importer.items():
        importers = {
            str(path.relative_to(ROOT))
            for path in (ROOT / "server").rglob("*.py")
            if module in imports(path)
        }
        assert importers == {importer}, module


async def test_rate_limit_is_one_bucket_across_processes(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    a, b, _ = hubs
    on_a, on_b = a.rate_limiter(1.0, 2), b.rate_limiter(1.0, 2)
    uid = "rl-" + str(id(on_a))
    await on_a.take(uid)
    await on_b.take(uid)  # the burst of 2 is spent, across both
    for limiter in (on_a, on_b):
        with pytest.raises(RateLimited) as info:
            await limiter.take(uid)
        assert 0 < info.value.details["retryAfterMs"] <= 1001
    await on_a.take("someone-else")


async def test_rate_limit_falls_back_to_the_process_without_redis() -> None:
    hub = RedisHub("redis://127.0.0.1:1/0")  # nothing listens there
    hub._redis = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    limiter = hub.rate_limiter(1.0, 1)
    try:
        await limiter.take("u")
        with pytest.raises(RateLimited):
            await limiter.take("u")
    finally:
        await hub._redis.aclose()


async def test_presence_is_mirrored_so_sends_need_no_lookup(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """A's mirror of B's presence follows B's first and last connection of a user, so a send
    finds its receivers' processes in memory (a group of 100 costs no 100 Redis lookups)."""
    a, b, _ = hubs
    c1, c2 = conn("mirrored"), conn("mirrored")
    b.register(c1)
    b.register(c2)
    await eventually(lambda: a._mirror.by_uid.get("mirrored") == {b.node})
    b.unregister(c1)
    await asyncio.sleep(0.2)
    assert a._mirror.by_uid.get("mirrored") == {b.node}  # one connection left
    b.unregister(c2)
    await eventually(lambda: "mirrored" not in a._mirror)
    # A hub that starts later reads the presence already there.
    b.register(conn("before"))
    await eventually(lambda: b._out.empty())
    late = RedisHub(redis_server().url(5))
    await late.start({})
    try:
        assert late._mirror.by_uid.get("before") == {b.node}
    finally:
        await late.stop()


async def test_a_batch_of_frames_is_one_publish_per_process_in_order(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """Frames queued together (a commit batch's deliveries) go to another process as one
    PUBLISH, which that process reads once: each connection there gets its frames once, in
    the order they were sent, and a close queued after them arrives after them."""
    a, b, _ = hubs
    events: list[tuple[str, str]] = []

    def watched(uid: str) -> Connection:
        return Connection(uid, queue_size=64, close=lambda code, why: events.append((uid, "close")))

    x, y, z = watched("bx"), watched("by"), watched("bz")
    for c in (x, y, z):
        b.register(c)
    spy = aioredis.from_url(redis_server().url(5))
    pubsub = spy.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(f"parley:n:{b.node}")
    await eventually(lambda: a._mirror.by_uid.get("bz") == {b.node})
    a.send(["bx", "by"], "one")  # all in one tick, as a commit batch's sends are
    a.send(["by"], "two \N{SNOWMAN}")
    a.send(["bz", "nobody"], "three")
    a.send(["bx"], "four")
    for victim in a.connections("bz"):
        victim.close(4403, "banned")
    await eventually(lambda: events == [("bz", "close")])
    drained = {c.uid: [c.queue.get_nowait() for _ in range(c.queue.qsize())] for c in (x, y, z)}
    assert drained == {"bx": ["one", "four"], "by": ["one", "two \N{SNOWMAN}"], "bz": ["three"]}
    published = []
    deadline = asyncio.get_running_loop().time() + 0.5
    while asyncio.get_running_loop().time() < deadline:
        msg = await pubsub.get_message(timeout=0.1)
        if msg is not None:
            published.append(msg["data"])
    assert len(published) == 1
    head, _, payload = published[0].partition(b"\n")
    ops = orjson.loads(head)["o"]
    assert [op[0] for op in ops] == ["s", "s", "s", "s", "c"]
    assert payload.decode() == "onetwo \N{SNOWMAN}threefour"  # each frame's bytes once
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await spy.aclose()


async def test_a_large_batch_is_split_into_several_publishes(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is cut into PUBLISHes of about ``PUBLISH_BYTES`` (a subscriber's output buffer
    in Redis stays small); the frames still arrive once each, in order."""
    from server import redis_hub

    monkeypatch.setattr(redis_hub, "PUBLISH_BYTES", 1000)
    a, b, _ = hubs
    c = Connection("big", queue_size=256, close=lambda code, reason: None)
    b.register(c)
    await eventually(lambda: a._mirror.by_uid.get("big") == {b.node})
    frames = [f"{i:03d}" + "x" * 300 for i in range(40)]
    for frame in frames:
        a.send(["big"], frame)
    await eventually(lambda: c.queue.qsize() == len(frames))
    assert [c.queue.get_nowait() for _ in frames] == frames


async def test_a_process_of_the_earlier_version_is_still_understood(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """During a rolling upgrade a process may still publish one frame per message."""
    _, b, _ = hubs
    c = conn("old")
    b.register(c)
    spy = aioredis.from_url(redis_server().url(5))
    head = orjson.dumps({"t": "s", "u": ["old"], "d": False})
    await spy.publish(f"parley:n:{b.node}", head + b"\nframe-from-old")
    await spy.aclose()
    await eventually(lambda: c.queue.qsize() == 1)
    assert c.queue.get_nowait() == "frame-from-old"


async def test_online_is_answered_from_the_presence_mirror(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline push asks ``online`` for each receiver: once the mirror is read, the answer
    costs no Redis round trip, and it follows connections on the other process."""
    a, b, _ = hubs
    asked: list[str] = []
    client = a._redis
    assert client is not None
    scard = client.scard

    async def counted(name: str) -> int:
        asked.append(name)
        return int(await scard(name))

    monkeypatch.setattr(client, "scard", counted)
    assert not await a.online("roamer")
    c = conn("roamer")
    b.register(c)
    await eventually(lambda: "roamer" in a._mirror)
    assert await a.online("roamer")
    b.unregister(c)
    await eventually(lambda: "roamer" not in a._mirror)
    assert not await a.online("roamer")
    assert asked == []


async def test_before_the_mirror_is_read_receivers_are_looked_up_in_redis(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """Until its mirror of the presence is read (just subscribed, or back after an outage), a
    process finds the receivers' processes in Redis's sets: the frames still arrive once."""
    a, b, _ = hubs
    c1, c2 = conn("early1"), conn("early2")
    b.register(c1)
    b.register(c2)
    await eventually(lambda: a._mirror.by_uid.get("early2") == {b.node})
    a._mirrored = False  # as while the snapshot is being read
    try:
        a.send(["early1", "early2", "elsewhere"], "frame")
        await eventually(lambda: c1.queue.qsize() == 1 and c2.queue.qsize() == 1)
    finally:
        a._mirrored = True
    assert c1.queue.get_nowait() == c2.queue.get_nowait() == "frame"


async def test_a_process_whose_heartbeat_stopped_is_dropped_then_taken_back() -> None:
    """A process whose alive key expired is dead: the first send that meets it drops its
    users from the presence sets and from the mirror. If its key comes back (it had lost
    Redis for a while), it counts as alive again."""
    url = redis_server().url(7)
    a, b = RedisHub(url), RedisHub(url)
    await a.start({})
    await b.start({})
    spy = aioredis.from_url(url)
    try:
        b.register(conn("ghost"))
        await eventually(lambda: a._mirror.by_uid.get("ghost") == {b.node})
        beat = b._tasks[2]
        beat.cancel()  # B stops beating; its key expires (here: deleted at once)
        await asyncio.gather(beat, return_exceptions=True)
        await spy.delete(f"parley:alive:{b.node}")
        await eventually(lambda: b.node in a._dead, timeout=8.0)
        a.send(["ghost"], "frame")
        await eventually(lambda: "ghost" not in a._mirror)
        assert await spy.smembers("parley:p:ghost") == set()
        b._tasks[2] = asyncio.create_task(b._heartbeat())  # B beats again
        await eventually(lambda: b.node not in a._dead, timeout=8.0)
        b.register(conn("returner"))  # and is routed to as before
        await eventually(lambda: a._mirror.by_uid.get("returner") == {b.node})
        a_beat = a._tasks[2]
        a_beat.cancel()  # from here only B's own presence news can tell A it is alive
        await asyncio.gather(a_beat, return_exceptions=True)
        a._dead.add(b.node)  # as if its key had expired meanwhile
        b.unregister(b.connections("returner")[0])
        b.register(back := conn("returner"))  # B publishes its presence: alive
        await eventually(lambda: b.node not in a._dead)
        a.send(["returner"], "welcome back")
        await eventually(lambda: back.queue.qsize() == 1)
        assert await spy.smembers("parley:p:returner") == {b.node.encode()}
    finally:
        await a.stop()
        await b.stop()
        await spy.aclose()


async def test_invalidations_stay_within_their_database_and_old_notes_still_apply(
    hubs: tuple[RedisHub, RedisHub, list[tuple[str, str]]],
) -> None:
    """Two deployments on one Redis server (database 5 and 6) do not drop each other's caches;
    a process of an earlier version (its note names no database) is still heard."""
    a, b, seen = hubs
    other_seen: list[tuple[str, str]] = []

    def record(kind: str, key: str) -> None:
        other_seen.append((kind, key))

    other = RedisHub(redis_server().url(6))
    await other.start({"members": record})
    try:
        await other.subscribed.wait()
        a.publish("members", "g-here")
        await eventually(lambda: seen == [("members", "g-here")])
        other.publish("members", "g-there")
        spy = aioredis.from_url(redis_server().url(5))
        await spy.publish(
            "parley:invalidate", orjson.dumps({"n": "old", "k": "members", "y": "g-old"})
        )
        await spy.aclose()
        await eventually(lambda: ("members", "g-old") in seen)
        await eventually(lambda: ("members", "g-old") in other_seen)  # the old note names none
        await asyncio.sleep(0.3)
        assert seen == [("members", "g-here"), ("members", "g-old")]
        assert ("members", "g-here") not in other_seen
    finally:
        await other.stop()
