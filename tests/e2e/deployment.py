"""A deployment of several processes for end-to-end tests: ``parley serve`` processes and
``parley moderation-worker`` processes on one PostgreSQL database and one Redis, sharing the
data dir's secrets (``tests/pg.py`` and ``tests/redis_server.py`` start the engines)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, ServerProcess, free_port
from tests.pg import PostgresCluster, cluster

READY = b"Parley moderation worker ready"


@dataclass
class WorkerProcess:
    """A ``parley moderation-worker`` subprocess."""

    data_dir: Path
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, timeout: float = 20.0) -> None:
        cmd = [
            sys.executable, "-m", "server.cli", "moderation-worker",
            "--data-dir", str(self.data_dir), "--log-level", "info", *self.args,
        ]  # fmt: skip
        self.log_path = self.data_dir.parent / f"worker-{uuid.uuid4().hex[:6]}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log()}")
            if READY in self.log_path.read_bytes():
                return
            time.sleep(0.05)
        raise RuntimeError(f"worker did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

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


@dataclass
class Deployment:
    """Servers and workers on one database and one Redis; ``stop()`` ends them all."""

    root: Path
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    servers: list[ServerProcess] = field(default_factory=list)
    workers: list[WorkerProcess] = field(default_factory=list)
    api_key: str = field(default_factory=lambda: "test-key-" + uuid.uuid4().hex[:8])
    pg: PostgresCluster | None = None  # the session's cluster unless the test brings one

    @property
    def data_dir(self) -> Path:
        return self.root / "d"

    @property
    def database_url(self) -> str:
        return (self.pg or cluster()).database(str(self.data_dir.resolve()))

    def urls(self) -> list[str]:
        return ["--database-url", self.database_url, "--redis-url", self.redis_url]

    def server(self, *args: str) -> ServerProcess:
        """Start one more ``parley serve`` (the first one makes the data dir's secrets)."""
        srv = ServerProcess(
            data_dir=self.data_dir,
            port=free_port(),
            api_key=self.api_key,
            args=["--rate-limit", "0", *self.urls(), *args],
            env=self.env,
        )
        srv.start()
        self.servers.append(srv)
        return srv

    def worker(self, **env: str) -> WorkerProcess:
        wrk = WorkerProcess(self.data_dir, self.urls(), {**self.env, **env})
        wrk.start()
        self.workers.append(wrk)
        return wrk

    def stop(self) -> None:
        for proc in [*self.workers, *self.servers]:
            proc.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    """Poll ``check`` (a state in other processes) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)
