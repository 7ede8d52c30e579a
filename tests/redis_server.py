"""A throwaway Redis for the tests that run several processes, from Debian's ``redis-server``.

Started on a free loopback port with a temporary directory, no persistence (``--save ''
--appendonly no``), stopped and removed at the end of the session. Nothing here skips: a
machine without ``redis-server`` fails loudly (``.ci/run`` and ``make test`` install it).
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class RedisServer:
    """One running ``redis-server``; ``url(n)`` names its database ``n``."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: apt-get install -y redis-server (see .ci/run)"
            )
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="parley-redis-"))
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        if not self.port:  # a restart keeps its port
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = int(s.getsockname()[1])
        log = (self.root / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.root),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as c,
            ):
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer:\n{self.log()}")

    def log(self) -> str:
        path = self.root / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def halt(self) -> None:
        """Stop the server, keeping its port and directory (``start()`` brings it back)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.root, ignore_errors=True)


_server: RedisServer | None = None


def redis_server() -> RedisServer:
    """The session's Redis, started on first use (stopped by ``stop_redis``)."""
    global _server
    if _server is None:
        made = RedisServer()
        try:
            made.start()
        except BaseException:
            made.stop()
            raise
        _server = made
        atexit.register(stop_redis)
    return _server


def stop_redis() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None
