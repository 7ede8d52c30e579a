"""Shared fixtures: a real Parley server under uvicorn on 127.0.0.1, in a subprocess, with a
temporary data dir; tests talk to it over real WebSockets and HTTP.

With ``PARLEY_TEST_BACKEND=postgres`` every server the fixtures start keeps its data in
PostgreSQL instead (a database of its own in a cluster the session starts: ``tests/pg.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from client.sdk import ParleyClient, RestClient
from tests.pg import BACKEND, database_args, stop_cluster
from tests.redis_server import stop_redis

ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header() -> str:
    return f"parley storage backend: {BACKEND} (PARLEY_TEST_BACKEND)"


def pytest_sessionfinish() -> None:
    stop_cluster()  # the PostgreSQL cluster, if this session started one
    stop_redis()  # and the Redis (tests/e2e/test_two_processes.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """A `parley serve` subprocess and how to reach it."""

    data_dir: Path
    port: int
    api_key: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 20.0) -> None:
        cmd = [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--api-key",
            self.api_key,
            "--log-level",
            "warning",
            *([] if self.tls else ["--insecure-http"]),
            *self.args,
        ]
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        env = {**os.environ, **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                r = httpx.get(self.url + "/healthz", timeout=1.0, verify=False)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become healthy:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[type[ServerProcess]]:
    """Start extra servers with their own flags; all are stopped at the end of the session."""
    started: list[ServerProcess] = []

    def make(
        *args: str,
        env: dict[str, str] | None = None,
        tls: bool = False,
        data_dir: Path | None = None,
    ) -> ServerProcess:
        data_dir = data_dir or tmp_path_factory.mktemp("data") / "d"
        srv = ServerProcess(
            data_dir=data_dir,
            port=free_port(),
            api_key="test-key-" + uuid.uuid4().hex[:8],
            args=[*database_args(data_dir), *args],
            env=env or {},
            tls=tls,
        )
        srv.start()
        started.append(srv)
        return srv

    yield make  # type: ignore[misc]
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def server(server_factory: type[ServerProcess]) -> ServerProcess:
    """The shared server: rate limit off, default moderation rules."""
    return server_factory("--rate-limit", "0")  # type: ignore[call-arg]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class World:
    """Helpers bound to one server: make users, tokens and connected clients."""

    server: ServerProcess
    rest: RestClient
    clients: list[ParleyClient] = field(default_factory=list)

    async def user(self, prefix: str = "u", *, role: str = "user") -> str:
        uid = unique(prefix)
        await self.rest.create_user(uid, uid.title(), role=role)
        return uid

    async def token(self, uid: str) -> str:
        return await self.rest.issue_token(uid)

    async def connect(self, uid: str, **kw: object) -> ParleyClient:
        client = ParleyClient(self.server.ws_url, await self.token(uid), **kw)  # type: ignore[arg-type]
        await client.connect()
        self.clients.append(client)
        return client

    def user_rest(self, token: str) -> RestClient:
        return RestClient(self.server.url, token=token)

    async def staff_reason(self, message_id: int) -> str:
        """What decided a disapproved message, as staff read it (the sender reads the
        decision's explanation in plain words instead)."""
        items = (await self.rest.queue("disapproved"))["items"]
        found = [i for i in items if i["message"]["id"] == message_id]
        assert found, f"message {message_id} is not among the disapproved"
        return str(found[0]["moderation"]["reason"])


@contextlib.asynccontextmanager
async def world_on(server: ServerProcess) -> AsyncIterator[World]:
    """A World on ``server`` whose clients are closed at the end."""
    async with RestClient(server.url, api_key=server.api_key) as rest:
        w = World(server, rest)
        try:
            yield w
        finally:
            for c in w.clients:
                await c.close()


@pytest.fixture
async def world(server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(server) as w:
        yield w


@pytest.fixture
async def fresh_world(server_factory: type[ServerProcess]) -> AsyncIterator[World]:
    """A World on a server of its own (``--rate-limit 0``), stopped after the test: for tests
    that change rules, settings or lists, which must stay off the shared server, and whose
    models' memory is not kept for the rest of the session."""
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    try:
        async with world_on(srv) as w:
            yield w
    finally:
        srv.stop()
