"""ProviderGuard: timeout (waiting for a slot included), concurrency limit, breaker, reports."""

from __future__ import annotations

import asyncio

import pytest

from moderation.providers.guard import (
    ERROR_CATEGORY,
    GuardConfig,
    OnError,
    ProviderCall,
    ProviderError,
    ProviderGuard,
    error_detections,
)


def guard(**kw: float) -> tuple[ProviderGuard, list[ProviderCall]]:
    calls: list[ProviderCall] = []
    config = GuardConfig(**{"timeout": 0.1, "max_concurrency": 2, **kw})  # type: ignore[arg-type]
    return ProviderGuard("p", config, report=calls.append), calls


async def test_success_is_reported() -> None:
    g, calls = guard()

    async def fn() -> int:
        return 7

    assert await g.call(fn, message_id=3) == 7
    assert calls[0].error is None and calls[0].message_id == 3 and calls[0].provider == "p"


async def test_timeout_covers_a_hanging_call() -> None:
    g, calls = guard(timeout=0.05)

    async def hang() -> int:
        await asyncio.Event().wait()
        return 0

    with pytest.raises(ProviderError) as info:
        await g.call(hang, message_id=1)
    assert info.value.kind == "timeout" and "50 ms" in info.value.message
    assert calls[0].error == "timeout" and calls[0].seconds >= 0.05


async def test_waiting_for_a_slot_counts_against_the_timeout() -> None:
    g, _ = guard(timeout=0.1, max_concurrency=1)
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 1

    first = asyncio.create_task(g.call(slow, message_id=1))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderError):
        await g.call(slow, message_id=2)
    assert loop.time() - started < 0.5
    release.set()
    with pytest.raises(ProviderError):  # the first one timed out as well meanwhile
        await first


async def test_breaker_opens_and_fails_fast() -> None:
    g, calls = guard(breaker_failures=2, breaker_reset=60)

    async def boom() -> int:
        raise RuntimeError("nope")

    for _ in range(2):
        with pytest.raises(ProviderError) as info:
            await g.call(boom, message_id=1)
        assert info.value.kind == "error" and "RuntimeError" in info.value.message
    with pytest.raises(ProviderError) as info:
        await g.call(boom, message_id=1)
    assert info.value.kind == "circuit_open"
    assert [c.error for c in calls] == ["error", "error", "circuit_open"]


@pytest.mark.parametrize(
    ("on_error", "categories", "expected"),
    [
        (OnError.ALLOW, (), []),
        (OnError.BLOCK, (), [ERROR_CATEGORY]),
        (OnError.BLOCK, ("hate",), [ERROR_CATEGORY, "hate"]),
    ],
)
def test_error_detections(
    on_error: OnError, categories: tuple[str, ...], expected: list[str]
) -> None:
    err = ProviderError("p", "timeout", "no answer within 300 ms")
    found = error_detections("p", err, on_error, categories)
    assert [d.category for d in found] == expected
    assert all(d.confidence == 1.0 and "p error (timeout)" in d.reason for d in found)
