"""The bounded worker pool: every job handled, full queue waits, failures logged not fatal."""

from __future__ import annotations

import asyncio
import logging

import pytest

from moderation.pipeline import Pipeline


async def test_all_jobs_handled_by_workers() -> None:
    seen: list[int] = []

    async def handle(job: int) -> None:
        await asyncio.sleep(0)
        seen.append(job)

    pipeline: Pipeline[int] = Pipeline(handle, workers=3, maxsize=5)
    await pipeline.start()
    for i in range(50):
        await pipeline.submit(i)
    await pipeline.join()
    await pipeline.stop()
    assert sorted(seen) == list(range(50))
    assert not pipeline.running


async def test_submit_waits_when_full_and_never_drops() -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def handle(job: int) -> None:
        await gate.wait()
        seen.append(job)

    pipeline: Pipeline[int] = Pipeline(handle, workers=1, maxsize=2)
    await pipeline.start()
    await pipeline.submit(0)  # taken by the worker
    await asyncio.sleep(0)
    await pipeline.submit(1)
    await pipeline.submit(2)  # queue now full
    blocked = asyncio.create_task(pipeline.submit(3))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    gate.set()
    await blocked
    await pipeline.join()
    await pipeline.stop()
    assert seen == [0, 1, 2, 3]


async def test_handler_exception_is_logged_and_worker_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    async def handle(job: int) -> None:
        if job == 1:
            raise RuntimeError("boom")
        seen.append(job)

    pipeline: Pipeline[int] = Pipeline(handle, workers=1, maxsize=10, name="t")
    await pipeline.start()
    with caplog.at_level(logging.ERROR, logger="moderation.pipeline"):
        for i in range(3):
            await pipeline.submit(i)
        await pipeline.join()
    await pipeline.stop()
    assert seen == [0, 2]
    assert any("boom" in (r.exc_text or "") or r.exc_info for r in caplog.records)


def test_queue_is_always_bounded() -> None:
    async def handle(job: int) -> None:
        return None

    with pytest.raises(ValueError):
        Pipeline(handle, maxsize=0)
