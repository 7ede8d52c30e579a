"""A real HTTP peer on 127.0.0.1 for end-to-end tests: a Starlette app under uvicorn, run as a
task on the tests' event loop, recording every request and answering through a handler the
test can swap at any time (approve, block, hang, fail, answer garbage)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port


@dataclass(frozen=True)
class Recorded:
    """One request the peer received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Handler = Callable[[Recorded], Awaitable[Response]]


async def ok_empty(request: Recorded) -> Response:
    return JSONResponse({})


class Peer:
    """``async with Peer(handler) as peer``: serves on ``peer.url`` until the block ends."""

    def __init__(self, handler: Handler = ok_empty, *, port: int | None = None) -> None:
        self.handler = handler
        self.port = port or free_port()
        self.requests: list[Recorded] = []
        self.release = asyncio.Event()  # set on exit, so hanging handlers end
        self._changed = asyncio.Condition()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _endpoint(self, request: Request) -> Response:
        recorded = Recorded(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
        )
        async with self._changed:
            self.requests.append(recorded)
            self._changed.notify_all()
        return await self.handler(recorded)

    async def wait_for(
        self, count: int, *, path: str | None = None, timeout: float = 10.0
    ) -> list[Recorded]:
        """Wait until at least ``count`` requests (to ``path``, if given) arrived; return them."""

        def matching() -> list[Recorded]:
            return [r for r in self.requests if path is None or r.path == path]

        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(matching()) >= count)
        return matching()

    async def hang(self, request: Recorded) -> Response:
        """A handler that never answers (until the peer stops)."""
        await self.release.wait()
        return Response(status_code=503)

    async def __aenter__(self) -> Peer:
        app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PUT"])]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ws="none",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        # Leave the test runner's signal handlers alone.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
