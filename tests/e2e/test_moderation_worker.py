"""Moderation jobs on a Redis Streams consumer group (issue 14 item 4): two servers that leave
judging to ``parley moderation-worker`` (``--no-moderation-jobs``), one PostgreSQL, one Redis,
a real Custom API provider and a real webhook receiver on 127.0.0.1.

- A verdict computed by the worker reaches the sender on the other server; the outgoing
  webhook event is sent once, though every process runs a webhook sender.
- A worker killed with SIGKILL while judging: another worker takes the job over (XAUTOCLAIM)
  and the verdict is applied once (one ``message.moderated``, one audit record, one event).
- A job run again (as after a worker that died between the verdict and its acknowledgement)
  finds the message decided: no second verdict, provider call, audit record or event.
- A worker stopped (SIGTERM) while judging hands its job over at once: the next worker
  takes it though it waits 30 s before taking a silent consumer's jobs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from starlette.responses import JSONResponse, Response

from client.sdk import ParleyClient
from tests.conftest import World, unique, world_on
from tests.e2e.deployment import Deployment, eventually
from tests.e2e.peer import Peer, Recorded
from tests.redis_server import RedisServer

SECRET = "whsec-worker-test"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    redis = RedisServer()
    redis.start()
    dep = Deployment(
        tmp_path_factory.mktemp("worker"),
        redis.url(0),
        env={"PARLEY_MODERATION_CLAIM_IDLE": "1.5"},
    )
    try:
        dep.server("--no-moderation-jobs")
        dep.server("--no-moderation-jobs")
        dep.worker()
        yield dep
    finally:
        dep.stop()
        redis.stop()


@pytest.fixture
async def worlds(deployment: Deployment) -> AsyncIterator[tuple[World, World]]:
    async with world_on(deployment.servers[0]) as a, world_on(deployment.servers[1]) as b:
        yield a, b


class Provider:
    """The Custom API (``/hook``) and the webhook receiver (``/events``) in one peer. The
    provider blocks; while ``hold`` is set it answers nothing until the test ends."""

    def __init__(self, slow_events: float = 0.0) -> None:
        self.hold = False
        self.held = asyncio.Event()
        self.events: list[dict[str, Any]] = []  # as they arrive
        self.event_arrived = asyncio.Event()
        self.slow_events = slow_events
        self.hook_calls = 0

    async def __call__(self, request: Recorded) -> Response:
        if request.path == "/events":
            self.events.append(request.json())
            self.event_arrived.set()
            await asyncio.sleep(self.slow_events)
            return JSONResponse({"ok": True})
        self.hook_calls += 1
        if self.hold:
            self.hold = False
            self.held.set()
            await asyncio.sleep(3600)  # the worker asking is killed meanwhile
        return JSONResponse({"isMatchingCondition": True, "confidence": 0.9, "reason": "nope"})

    def disapprovals(self, message_id: int) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events
            if e["type"] == "message.disapproved" and e["data"]["message"]["id"] == message_id
        ]


def settings(peer: Peer) -> dict[str, Any]:
    return {
        "customApi": {
            "url": peer.url + "/hook",
            "secret": SECRET,
            "timeoutMs": 60_000,
            "actionOnError": "allow",
        },
        "webhooks": [
            {
                "id": "events",
                "url": peer.url + "/events",
                "secret": SECRET,
                "events": ["message.disapproved"],
                "timeoutMs": 10_000,
                "backoffMs": 50,
                "maxBackoffMs": 200,
            }
        ],
    }


async def configure(world: World, peer: Peer, sender: str) -> None:
    await world.rest.put_settings(settings(peer))
    await world.rest.create_rule(
        {
            "id": unique("capi"),
            "name": "provider decides",
            "filters": {"sender": {"uids": [sender]}},
            "conditions": [{"kind": "custom_api", "messageTypes": ["text"]}],
            "actions": ["block"],
        }
    )


async def verdict(client: ParleyClient, message_id: int, timeout: float = 10.0) -> Any:
    return await client.next_event(
        "message.moderated", timeout=timeout, predicate=lambda e: e.message["id"] == message_id
    )


async def audit_of(world: World, message_id: int) -> list[dict[str, Any]]:
    entries = (await world.rest.audit())["entries"]
    return [
        e
        for e in entries
        if e["action"] == "message.disapproved" and e["target"] == str(message_id)
    ]


async def test_worker_verdict_reaches_sender_on_other_server_and_one_webhook(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    provider = Provider(slow_events=2.0)
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        a = await wa.connect(alice)
        alice_on_b, b = await wb.connect(alice), await wb.connect(bob)
        await asyncio.sleep(0.3)  # presence and the new rule reach every process
        sent = await a.send_text(bob, "judged by the worker")
        assert sent["moderationStatus"] == "pending"
        got = await verdict(alice_on_b, sent["id"])
        assert got.message["moderationStatus"] == "disapproved"
        assert got.data["moderation"]["reason"]
        await b.expect_no_event("message", within=0.3)
        # Three processes run a webhook sender on one delivery log. While the receiver takes
        # its time over the event, a settings write wakes every sender: the event, still
        # pending, goes out once all the same.
        async with asyncio.timeout(10):
            await provider.event_arrived.wait()
        await wb.rest.put_settings(settings(peer))
        await asyncio.sleep(2.5)
        assert len(provider.disapprovals(sent["id"])) == 1
        assert len(await audit_of(wb, sent["id"])) == 1


async def _true(value: object) -> bool:
    return bool(value)


async def test_killed_worker_job_is_taken_over_and_applied_once(
    deployment: Deployment, worlds: tuple[World, World]
) -> None:
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        a = await wa.connect(alice)
        alice_on_b = await wb.connect(alice)
        await asyncio.sleep(0.3)
        provider.hold = True
        sent = await a.send_text(bob, "the worker dies judging this")
        async with asyncio.timeout(10):
            await provider.held.wait()  # the worker holds the job, waiting on the provider
        deployment.workers[0].kill9()
        await a.expect_no_event("message.moderated", within=0.5)
        deployment.worker()  # takes the dead worker's job once it has been idle 1.5 s
        for client in (a, alice_on_b):
            got = await verdict(client, sent["id"], timeout=15)
            assert got.message["moderationStatus"] == "disapproved"
        for client in (a, alice_on_b):
            await client.expect_no_event("message.moderated", within=0.5)
        await eventually(lambda: _true(provider.disapprovals(sent["id"])))
        await asyncio.sleep(0.5)
        assert len(provider.disapprovals(sent["id"])) == 1
        assert len(await audit_of(wa, sent["id"])) == 1
        history = await wa.rest.get_message(sent["id"])
        assert history["moderationStatus"] == "disapproved"


async def test_messages_keep_flowing_through_the_second_worker(
    worlds: tuple[World, World],
) -> None:
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        a = await wa.connect(alice)
        b = await wb.connect(bob)
        await asyncio.sleep(0.3)
        sent = [await a.send_text(bob, f"message {i}") for i in range(20)]
        for s in sent:
            assert (await verdict(a, s["id"])).message["moderationStatus"] == "disapproved"
        await b.expect_no_event("message", within=0.3)
        await eventually(lambda: _true(all(provider.disapprovals(s["id"]) for s in sent)))
        assert len(provider.events) == 20


async def test_stopped_worker_hands_its_job_over_at_once(
    deployment: Deployment, worlds: tuple[World, World]
) -> None:
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        alice_on_b = await wb.connect(alice)
        await asyncio.sleep(0.3)
        provider.hold = True
        sent = await alice_on_b.send_text(bob, "the worker is stopped judging this")
        async with asyncio.timeout(10):
            await provider.held.wait()
        for worker in deployment.workers:
            worker.stop()  # SIGTERM: an orderly shutdown
        deployment.worker(PARLEY_MODERATION_CLAIM_IDLE="30")
        got = await verdict(alice_on_b, sent["id"], timeout=10)
        assert got.message["moderationStatus"] == "disapproved"
        await alice_on_b.expect_no_event("message.moderated", within=0.5)


async def test_a_job_run_again_changes_nothing(
    deployment: Deployment, worlds: tuple[World, World]
) -> None:
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        alice_on_b = await wb.connect(alice)
        await asyncio.sleep(0.3)
        sent = await alice_on_b.send_text(bob, "judged once")
        got = await verdict(alice_on_b, sent["id"])
        assert got.message["moderationStatus"] == "disapproved"
        await eventually(lambda: _true(provider.disapprovals(sent["id"])))
        calls = provider.hook_calls
        # The job again, as a worker that died before acknowledging it would leave it.
        r = aioredis.from_url(deployment.redis_url)
        try:
            await r.xadd(
                "parley:mod:jobs", {"m": sent["id"], "r": 0, "v": b"", "t": repr(time.time())}
            )

            async def taken() -> bool:
                return int(await r.xlen("parley:mod:jobs")) == 0

            await eventually(taken)  # taken, found decided, acknowledged and deleted
            pending = await r.xpending("parley:mod:jobs", "parley:mod")
            assert pending["pending"] == 0
        finally:
            await r.aclose()
        await alice_on_b.expect_no_event("message.moderated", within=1.0)
        assert provider.hook_calls == calls
        assert len(await audit_of(wa, sent["id"])) == 1
        assert len(provider.disapprovals(sent["id"])) == 1


async def test_a_job_that_keeps_failing_is_held_for_a_moderator(
    deployment: Deployment, worlds: tuple[World, World]
) -> None:
    """A job whose consumers died ``ATTEMPTS`` times (a message the pipeline cannot judge) is
    not taken a sixth time: its message is held in the review queue under the pseudo-rule
    ``moderation_failed``, and a moderator decides it as any held message."""
    wa, wb = worlds
    provider = Provider()
    async with Peer(provider) as peer:
        alice, bob = await wa.user("alice"), await wa.user("bob")
        await configure(wa, peer, alice)
        a, b = await wa.connect(alice), await wb.connect(bob)
        await asyncio.sleep(0.3)
        for worker in deployment.workers:
            worker.stop()  # nobody takes jobs while the failures are set up
        sent = await a.send_text(bob, "nobody manages to judge this")
        assert sent["moderationStatus"] == "pending"
        # What five consumers dying in turn leave in Redis: the job pending for a consumer
        # that is gone, delivered five times, idle for long.
        r = aioredis.from_url(deployment.redis_url)
        try:
            got = await r.xreadgroup("parley:mod", "gone", {"parley:mod:jobs": ">"}, count=10)
            entries = [e for e, f in got[0][1] if int(f[b"m"]) == sent["id"]]
            assert len(entries) == 1
            await r.xclaim(
                "parley:mod:jobs", "parley:mod", "gone", 0, entries, idle=3_600_000,
                retrycount=5,
            )  # fmt: skip
            deployment.worker()  # claims it (a sixth delivery): past the attempts, held

            async def done() -> bool:
                pending = await r.xpending("parley:mod:jobs", "parley:mod")
                return int(await r.xlen("parley:mod:jobs")) == 0 and pending["pending"] == 0

            await eventually(done)
        finally:
            await r.aclose()
        queue = await wb.rest.queue("review")
        item = next(i for i in queue["items"] if i["message"]["id"] == sent["id"])
        assert item["ruleId"] == "moderation_failed"
        assert item["message"]["moderationStatus"] == "pending"
        assert provider.hook_calls == 0  # not judged a sixth time
        await b.expect_no_event("message", within=0.3)
        moderator = await wb.user("mod", role="moderator")
        async with wb.user_rest(await wb.token(moderator)) as rm:
            assert (await rm.approve(sent["id"]))["moderationStatus"] == "approved"
        got_b = await b.next_event("message", timeout=10)
        assert got_b.message["id"] == sent["id"]
        assert (await verdict(a, sent["id"])).message["moderationStatus"] == "approved"
