"""A generic bounded queue with a pool of asyncio workers.

``submit`` waits while the queue is full and never drops a job; a handler's exception is
logged and the worker moves on to the next job. ``stop`` cancels the workers (jobs still
queued stay unprocessed: the server re-queues pending messages on start). No server imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Pipeline(Generic[T]):
    """``workers`` tasks calling ``handler`` on jobs from a queue of at most ``maxsize``."""

    def __init__(
        self,
        handler: Callable[[T], Awaitable[None]],
        *,
        workers: int = 4,
        maxsize: int = 10000,
        name: str = "moderation",
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1 (the queue is always bounded)")
        self._handler = handler
        self._workers = workers
        self._maxsize = maxsize
        self.name = name
        self._queue: asyncio.Queue[T] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def queue(self) -> asyncio.Queue[T]:
        """The job queue (created on first use, on the running loop)."""
        if self._queue is None:
            self._queue = asyncio.Queue(self._maxsize)
        return self._queue

    @property
    def running(self) -> bool:
        """Whether the workers are started."""
        return bool(self._tasks)

    def qsize(self) -> int:
        """Jobs waiting in the queue."""
        return self.queue.qsize()

    async def start(self) -> None:
        """Start the workers; a second call does nothing."""
        if self._tasks:
            return
        queue = self.queue
        self._tasks = [
            asyncio.create_task(self._work(queue), name=f"{self.name}-worker-{i}")
            for i in range(self._workers)
        ]

    async def submit(self, job: T) -> None:
        """Queue ``job``, waiting while the queue is full."""
        await self.queue.put(job)

    async def join(self) -> None:
        """Wait until every queued job has been handled (for tests and orderly shutdown)."""
        await self.queue.join()

    async def stop(self) -> None:
        """Cancel the workers and wait for them to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _work(self, queue: asyncio.Queue[T]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._handler(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: handler failed on %r", self.name, job)
            finally:
                queue.task_done()
