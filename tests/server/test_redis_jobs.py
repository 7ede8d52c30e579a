"""Moderation jobs on Redis Streams (``server/redis_jobs.py``): a verdict judged on the send
path travels in a job and comes back the same; a job that keeps failing is given up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

import orjson
import redis.asyncio as aioredis

from moderation.types import Action, Detection, Match, Verdict, VerdictStatus
from server.models import Message, Status
from server.redis_jobs import ATTEMPTS, STREAM, RedisJobs, verdict_from_json, verdict_to_json
from tests.redis_server import redis_server


def message(mid: int, *, rev: int) -> Message:
    return Message(
        id=mid,
        muid=f"m{mid}",
        conversation_id="a_user_b",
        sender="a",
        receiver="b",
        receiver_type="user",
        category="message",
        type="text",
        text="t",
        data=None,
        metadata={},
        tags=(),
        parent_id=None,
        sent_at=1,
        updated_at=1,
        status=Status.PENDING,
        rev=rev,
    )


def test_verdict_round_trips_through_a_job() -> None:
    verdict = Verdict(
        status=VerdictStatus.DISAPPROVED,
        matches=(
            Match("r1", "Rule one", 3, "said «x»", 0.93, (Action.BLOCK, Action.KICK)),
            Match("r2", "Rule two", 1, "flagged", 0.5, (Action.FLAG,)),
        ),
        actions=(Action.BLOCK, Action.KICK, Action.FLAG),
        detections=(Detection("keywords", "profanity", 1.0, "x"),),
    )
    wire = orjson.dumps(verdict_to_json(verdict))
    assert verdict_from_json(orjson.loads(wire)) == verdict
    clean = Verdict(VerdictStatus.APPROVED, (), (), ())
    assert verdict_from_json(orjson.loads(orjson.dumps(verdict_to_json(clean)))) == clean


async def test_a_job_that_keeps_failing_is_given_up_and_its_message_held() -> None:
    """On a real Redis: a job whose handler fails every time is taken ``ATTEMPTS`` times, then
    handed to ``give_up`` (which holds the message for a moderator) and acknowledged; another
    job goes through meanwhile."""
    url = redis_server().url(7)
    spy = aioredis.from_url(url)
    await spy.flushdb()
    runs: dict[int, int] = {}
    given_up: list[tuple[int, int, int]] = []

    async def take(
        message_id: int,
        rev: int,
        verdict: Verdict | None,
        done: Callable[[bool], Awaitable[None]],
        *,
        age: float = 0.0,
    ) -> None:
        runs[message_id] = runs.get(message_id, 0) + 1
        await done(message_id != 1)  # message 1 cannot be judged; message 2 can

    async def requeue(skip: Collection[int], min_age: int) -> int:
        return 0

    async def give_up(message_id: int, rev: int, attempts: int) -> None:
        given_up.append((message_id, rev, attempts))

    jobs = RedisJobs(url, take=True, claim_idle=0.3)
    await jobs.start(take, requeue, give_up)
    try:
        assert await jobs.put(message(1, rev=3), None)
        assert await jobs.put(message(2, rev=0), None)
        deadline = asyncio.get_running_loop().time() + 20
        while not given_up:
            assert asyncio.get_running_loop().time() < deadline, f"never given up: {runs}"
            await asyncio.sleep(0.05)
        assert given_up == [(1, 3, ATTEMPTS)]
        assert runs == {1: ATTEMPTS, 2: 1}
        assert await spy.xlen(STREAM) == 0  # both acknowledged and deleted
        await asyncio.sleep(1.0)
        assert runs[1] == ATTEMPTS and len(given_up) == 1  # not taken again
    finally:
        await jobs.stop()
        await spy.aclose()
