"""Per-user limits that hold across the processes of a deployment (issue 14 item 3): slow
mode and the typing cap live in Redis, so a user connected to two processes gets no more than
on one. (The send rate limit: ``test_two_processes.py``; spam behaviour reads the sender's
recent messages from the shared database, so it has no per-process state to share.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from client.sdk import ServerError
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.test_two_processes import two_processes
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    redis = RedisServer()
    redis.start()
    try:
        with two_processes(tmp_path_factory.mktemp("limits"), redis.url(0)) as servers:
            yield servers
    finally:
        redis.stop()


@pytest.fixture
async def worlds(
    pair: tuple[ServerProcess, ServerProcess],
) -> AsyncIterator[tuple[World, World]]:
    async with world_on(pair[0]) as a, world_on(pair[1]) as b:
        yield a, b


async def test_slow_mode_holds_on_the_other_process(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    owner, alice = await wa.user("owner"), await wa.user("alice")
    guid = unique("g")
    await wa.rest.create_group(guid, "G", owner=owner)
    await wa.rest.add_member(guid, alice)
    await wa.rest.set_slow_mode(guid, 30)
    on_a, on_b = await wa.connect(alice), await wb.connect(alice)
    await asyncio.sleep(0.3)  # B reloads the group's slow mode (an invalidation)
    await on_a.send_text(guid, "first", receiver_type="group")
    with pytest.raises(ServerError) as err:
        await on_b.send_text(guid, "second, through the other process", receiver_type="group")
    assert err.value.code == "ERR_RATE_LIMITED"
    assert err.value.details["slowModeSeconds"] == 30
    assert 0 < err.value.details["retryAfterMs"] <= 30_000
    with pytest.raises(ServerError):
        await on_a.send_text(guid, "third", receiver_type="group")


async def test_typing_cap_counts_both_processes(worlds: tuple[World, World]) -> None:
    wa, wb = worlds
    alice, bob = await wa.user("alice"), await wa.user("bob")
    on_a, on_b = await wa.connect(alice), await wb.connect(alice)
    b = await wa.connect(bob)
    await asyncio.sleep(0.3)
    # Twenty changes of state, ten through each process: each passes the coalescing, and
    # the cap (5 a second, bursts of 10) is one bucket in Redis, not one per process.
    for i in range(10):
        state = "start" if i % 2 == 0 else "end"
        await on_a.typing(bob, state)
        await on_b.typing(bob, state)
    await on_a.ping()
    await on_b.ping()
    seen = 0
    while True:
        try:
            await b.next_event("typing", timeout=1.0)
            seen += 1
        except TimeoutError:
            break
    assert 10 <= seen <= 15
