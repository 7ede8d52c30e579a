"""Regex pattern lists against a real server: catastrophic shapes are refused when written,
and slow patterns that pass the check neither freeze the server nor get a message approved.

The slow list is polynomial, not of a known catastrophic shape, so the write-time check lets
it in: ``.*a.*a.*a.*a.*b`` searches a run of 5,000 ``a`` for about a second. Before the time
budget, each of its 70 patterns ran 50 ms on the event loop (3.5 s with /healthz stalled) and
the message was approved when they all timed out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from client.sdk import RestClient, ServerError
from tests.conftest import ServerProcess, World, unique, world_on

SLOW_PATTERNS = [
    f"{head}.*a.*a.*a.*a.*{tail}"
    for head in ("", "a")
    for tail in "bcdefghijklmnopqrstuvwxyz0123456789"
]
SLOW_TEXT = "a" * 5000


@pytest.fixture(scope="module")
def budget_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture
async def w(budget_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(budget_server) as world:
        yield world


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` (a state in another process) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def state(w: World, sender: RestClient, sent: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``sent`` is in the review queue, and its status as its sender sees it."""
    queued = any(i["message"]["id"] == sent["id"] for i in (await w.rest.queue("review"))["items"])
    mine = [m for m in await sender.history(sent["conversationId"]) if m["id"] == sent["id"]]
    return queued, mine[0]["moderationStatus"]


@pytest.mark.parametrize(
    ("pattern", "shape"),
    [
        (r"(a+)+$", "nested quantifier"),
        (r"(\w+\s?)+", "nested quantifier"),
        (r"(a|aa)*b", "overlapping alternatives"),
    ],
)
async def test_catastrophic_patterns_are_refused_on_write(
    w: World, pattern: str, shape: str
) -> None:
    list_id = unique("pl")
    body = {"id": list_id, "name": "p", "kind": "patterns", "items": [r"\bspam\b", pattern]}
    with pytest.raises(ServerError) as info:
        await w.rest.create_list(body)
    assert info.value.status == 400 and info.value.details == {"field": "items[1]"}
    assert repr(pattern) in info.value.message and shape in info.value.message
    await w.rest.create_list({**body, "items": [r"\bspam\b"]})
    with pytest.raises(ServerError) as info:
        await w.rest.update_list(list_id, body)
    assert info.value.status == 400 and repr(pattern) in info.value.message
    assert (await w.rest.get_list(list_id))["items"] == [r"\bspam\b"]


async def test_slow_patterns_hold_the_message_and_leave_the_server_responsive(
    w: World, budget_server: ServerProcess
) -> None:
    alice, bob = await w.user("alice"), await w.user("bob")
    list_id, rule_id = unique("slow"), unique("r")
    await w.rest.create_list(
        {"id": list_id, "name": "slow", "kind": "patterns", "items": SLOW_PATTERNS}
    )
    await w.rest.create_rule(
        {
            "id": rule_id,
            "name": "slow patterns",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [{"kind": "patterns", "messageTypes": ["text"], "listId": list_id}],
            "actions": ["block"],
        }
    )
    a, b = await w.connect(alice), await w.connect(bob)

    judged = asyncio.Event()
    latencies: list[float] = []

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=budget_server.url) as http:
            while not judged.is_set():
                started = time.monotonic()
                r = await http.get("/healthz", timeout=10.0)
                latencies.append(time.monotonic() - started)
                assert r.status_code == 200

    prober = asyncio.create_task(probe())
    try:
        while not latencies:  # the prober is up before the message goes out
            await asyncio.sleep(0.01)
        sent = await a.send_text(bob, SLOW_TEXT)
        async with w.user_rest(await w.token(alice)) as ra:

            async def decided() -> bool:
                queued, current = await state(w, ra, sent)
                return queued or current != "pending"

            await eventually(decided)
            queued, current = await state(w, ra, sent)
    finally:
        judged.set()
        await prober
    assert max(latencies) < 1.0, latencies
    assert sent["moderationStatus"] == "pending"
    assert (queued, current) == (True, "pending")
    item = next(
        i for i in (await w.rest.queue("review"))["items"] if i["message"]["id"] == sent["id"]
    )
    assert item["ruleId"] == rule_id and item["message"]["moderationStatus"] == "pending"
    entry = next(
        e
        for e in (await w.rest.audit(since=0))["entries"]
        if e["target"] == str(sent["id"]) and e["action"] == "message.review"
    )
    assert "pattern budget ran out" in entry["details"]["reason"]
    assert entry["details"]["actions"] == ["review"]
    await b.expect_no_event("message", within=0.3)
    await a.expect_no_event("message.moderated", within=0.1)
