"""Failure behaviour of a deployment (issue 14 item 5): two servers on their own PostgreSQL
cluster and their own Redis, which the tests stop and start again; a server killed with
SIGKILL. Clients get clear errors, nothing acknowledged is lost or duplicated, the processes
recover by themselves, and a dead process's moderation jobs are finished by another.

Server A takes moderation jobs, server B leaves them to others (``--no-moderation-jobs``),
so which process holds a job is known.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.responses import JSONResponse, Response

from client.sdk import ParleyClient, ServerError
from tests.conftest import World, unique, world_on
from tests.e2e.deployment import Deployment
from tests.e2e.peer import Peer, Recorded
from tests.pg import PostgresCluster
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[PostgresCluster, RedisServer]]:
    pg, redis = PostgresCluster(), RedisServer()
    try:
        pg.start()
        redis.start()
        yield pg, redis
    finally:
        redis.stop()
        pg.stop()


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, engines: tuple[PostgresCluster, RedisServer]
) -> Iterator[Deployment]:
    pg, redis = engines
    dep = Deployment(
        tmp_path_factory.mktemp("failover"),
        redis.url(0),
        env={"PARLEY_MODERATION_CLAIM_IDLE": "1.5"},
        pg=pg,
    )
    try:
        dep.server()
        dep.server("--no-moderation-jobs")
        yield dep
    finally:
        dep.stop()


@pytest.fixture
async def worlds(deployment: Deployment) -> AsyncIterator[tuple[World, World]]:
    async with world_on(deployment.servers[0]) as a, world_on(deployment.servers[-1]) as b:
        yield a, b


class Provider:
    """A Custom API that blocks every message; while ``hold`` is set the next request gets no
    answer (the process asking is killed meanwhile)."""

    def __init__(self) -> None:
        self.hold = False
        self.held = asyncio.Event()
        self.calls = 0

    async def __call__(self, request: Recorded) -> Response:
        self.calls += 1
        if self.hold:
            self.hold = False
            self.held.set()
            await asyncio.sleep(3600)
        return JSONResponse({"isMatchingCondition": True, "confidence": 0.9, "reason": "no"})


async def provider_rule(world: World, peer: Peer, sender: str) -> None:
    await world.rest.put_settings(
        {"customApi": {"url": peer.url + "/hook", "timeoutMs": 60_000, "actionOnError": "allow"}}
    )
    await world.rest.create_rule(
        {
            "id": unique("capi"),
            "name": "provider decides",
            "filters": {"sender": {"uids": [sender]}},
            "conditions": [{"kind": "custom_api", "messageTypes": ["text"]}],
            "actions": ["block"],
        }
    )


async def verdict(client: ParleyClient, message_id: int, timeout: float = 15.0) -> Any:
    got = await client.next_event(
        "message.moderated", timeout=timeout, predicate=lambda e: e.message["id"] == message_id
    )
    return got.message["moderationStatus"]


async def history_ids(world: World, uid: str, conversation: str) -> list[int]:
    async with world.user_rest(await world.token(uid)) as rest:
        return [m["id"] for m in await rest.history(conversation, limit=100)]


async def until_delivered(
    sender: ParleyClient, receiver: ParleyClient, to: str, timeout: float = 20.0
) -> None:
    """Send probes until one crosses to ``receiver`` (the processes found Redis again)."""
    deadline = time.monotonic() + timeout
    while True:
        probe = await sender.send_custom(to, "probe", {})
        try:
            await receiver.next_event(
                "message", timeout=0.5, predicate=lambda e, i=probe["id"]: e.message["id"] == i
            )
            return
        except TimeoutError:
            assert time.monotonic() < deadline, "no cross-process delivery after Redis came back"


async def test_redis_outage_keeps_chat_going_and_recovers(
    engines: tuple[PostgresCluster, RedisServer], worlds: tuple[World, World]
) -> None:
    _, redis = engines
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob, carol = [await wa.user(p) for p in ("alice", "bob", "carol")]
        await provider_rule(wa, peer, alice)
        a, c = await wa.connect(alice), await wa.connect(carol)
        b, alice_on_b = await wb.connect(bob), await wb.connect(alice)
        await asyncio.sleep(0.3)
        before = await a.send_custom(bob, "note", {"n": 1})
        await b.next_event("message", predicate=lambda e: e.message["id"] == before["id"])

        redis.halt()
        # Sends are acknowledged (stored) and delivered within the process; a job that
        # cannot go to Redis is judged by the process itself.
        during = await a.send_custom(bob, "note", {"n": 2})
        local = await a.send_custom(carol, "note", {"n": 3})
        await c.next_event("message", predicate=lambda e: e.message["id"] == local["id"])
        judged = await a.send_text(bob, "judged while Redis is away")
        assert await verdict(a, judged["id"]) == "disapproved"

        redis.start()  # empty: no stream, no presence; the processes rebuild both
        await until_delivered(a, b, bob)
        # Moderation jobs flow through Redis again: B queues, A judges, the verdict crosses.
        again = await alice_on_b.send_text(bob, "judged after Redis is back")
        assert await verdict(alice_on_b, again["id"]) == "disapproved"
        ids = await history_ids(wb, bob, before["conversationId"])
        assert ids.count(before["id"]) == 1 and ids.count(during["id"]) == 1
        assert judged["id"] not in ids and again["id"] not in ids


async def test_postgres_outage_gives_clear_errors_and_recovers(
    engines: tuple[PostgresCluster, RedisServer], worlds: tuple[World, World]
) -> None:
    pg, _ = engines
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    a, b = await wa.connect(alice), await wb.connect(bob)
    await asyncio.sleep(0.3)
    first = await a.send_custom(bob, "note", {"n": 1})
    await b.next_event("message", predicate=lambda e: e.message["id"] == first["id"])
    conversation = first["conversationId"]
    token = await wb.token(bob)

    pg.halt()
    try:
        muid = uuid.uuid4().hex
        with pytest.raises(ServerError) as info:
            await a.send_custom(bob, "note", {"n": 2}, muid=muid)
        assert info.value.code == "ERR_INTERNAL" and info.value.details == {"retryable": True}
        assert "database is unavailable" in info.value.message
        async with wb.user_rest(token) as rest:
            with pytest.raises(ServerError) as info:
                await rest.history(conversation)
        assert info.value.status == 500 and info.value.details == {"retryable": True}
    finally:
        pg.resume()

    # No restart: the same connections and processes carry on; the retry is stored once.
    deadline = time.monotonic() + 20
    while True:
        try:
            second = await a.send_custom(bob, "note", {"n": 2}, muid=muid)
            break
        except ServerError as exc:
            assert exc.code == "ERR_INTERNAL" and time.monotonic() < deadline
            await asyncio.sleep(0.2)
    await b.next_event("message", predicate=lambda e: e.message["id"] == second["id"])
    again = await a.send_custom(bob, "note", {"n": 2}, muid=muid)
    assert again["id"] == second["id"]
    ids = await history_ids(wb, bob, conversation)
    assert ids.count(first["id"]) == 1 and ids.count(second["id"]) == 1


async def test_sigkill_clients_move_and_jobs_are_finished_elsewhere(
    deployment: Deployment, worlds: tuple[World, World]
) -> None:
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await provider_rule(wa, peer, alice)
        a, b = await wa.connect(alice), await wb.connect(bob)
        await asyncio.sleep(0.3)
        acked = [await a.send_custom(bob, "note", {"n": i}, muid=f"m{i}") for i in range(5)]
        for m in acked:
            await b.next_event("message", predicate=lambda e, i=m["id"]: e.message["id"] == i)
        provider.hold = True
        held = await a.send_text(bob, "A dies judging this")  # only A takes jobs
        async with asyncio.timeout(10):
            await provider.held.wait()
        deployment.worker()  # cannot take the job while A lives (A keeps touching it)
        deployment.servers[0].kill9()

        # The client moves to B (as a load balancer would send it) and resends what it has
        # no verdict for yet, with the same muids: nothing is stored twice.
        moved = await wb.connect(alice)
        resent = await moved.send_custom(bob, "note", {"n": 4}, muid="m4")
        assert resent["id"] == acked[4]["id"]
        # The worker takes A's job over once it has been idle 1.5 s and applies it once.
        assert await verdict(moved, held["id"]) == "disapproved"
        await moved.expect_no_event("message.moderated", within=0.5)
        await b.expect_no_event("message", within=0.1)  # neither the resend nor the held one
        ids = await history_ids(wb, bob, acked[0]["conversationId"])
        assert [i for i in ids if i in {m["id"] for m in acked}] == [m["id"] for m in acked]
        async with wb.user_rest(await wb.token(alice)) as rest:
            mine = [m for m in await rest.history(held["conversationId"]) if m["id"] == held["id"]]
        assert [m["moderationStatus"] for m in mine] == ["disapproved"]
        assert provider.calls == 2  # A's unanswered request, then the worker's
