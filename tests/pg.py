"""A throwaway PostgreSQL cluster for the suite, from the Debian packages (``postgresql``).

``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback port with its unix
socket in that directory, trust authentication for the one role ``parley``; stopped and
removed at the end of the session. PostgreSQL refuses to run as root, so under root the
server commands run as the ``postgres`` system user (the package creates it) and the
directory is handed to it. Nothing here skips: a machine without PostgreSQL fails loudly
(``.ci/run`` installs it).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: ``PARLEY_TEST_BACKEND=postgres`` runs the servers the tests start on PostgreSQL.
BACKEND = os.environ.get("PARLEY_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgres"):
    raise RuntimeError(f"PARLEY_TEST_BACKEND must be sqlite or postgres, not {BACKEND!r}")
ON_POSTGRES = BACKEND == "postgres"

ROLE = "parley"


def bindir() -> Path:
    """The newest installed server's binaries (``/usr/lib/postgresql/<major>/bin``)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb): apt-get install -y postgresql (see .ci/run)"
    )


class PostgresCluster:
    """One running cluster; ``database(key)`` gives a fresh database per key."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable  # fsync on (bench/scale.py), as a deployment runs it
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="parley-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self._as: list[str] = []
        self._made: dict[str, str] = {}
        self._options = ""
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        out = subprocess.run(
            [*self._as, *cmd], capture_output=True, text=True, timeout=60, check=False
        )
        if out.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{cmd[0]} failed: {out.stdout}{out.stderr}{log}")

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            ROLE,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        # fsync off: the tests kill Parley, never PostgreSQL, so the page cache is as durable
        # as the disk for them, and the suite runs faster.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        options += " -c max_connections=300"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._options = options
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after ``halt``) on the same port and data."""
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-w", "-t", "60", "-o", self._options, "start",
        )  # fmt: skip

    def halt(self) -> None:
        """Stop the server, keeping its data and port (an outage; ``resume`` ends it)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        if self.port:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
            self.port = 0
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.port}/{database}"

    def database(self, key: str) -> str:
        """The URL of the database for ``key`` (a data dir), created on first use."""
        if key not in self._made:
            name = "parley_" + hashlib.sha256(key.encode()).hexdigest()[:20]
            self.psql(f'CREATE DATABASE "{name}"')
            self._made[key] = self.url(name)
        return self._made[key]

    def dump(self, key: str) -> bytes:
        """``pg_dump`` of the database for ``key``: everything it stores, as SQL."""
        out = subprocess.run(
            [str(self.bin / "pg_dump"), "--no-sync", self.database(key)],
            capture_output=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL with psql (as a client: no user switch needed); its output."""
        out = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                ROLE,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr}")
        return out.stdout


_cluster: PostgresCluster | None = None


def cluster() -> PostgresCluster:
    """The session's cluster, started on first use (see ``stop_cluster``)."""
    global _cluster
    if _cluster is None:
        made = PostgresCluster()
        try:
            made.start()
        except BaseException:
            made.stop()
            raise
        _cluster = made
        atexit.register(stop_cluster)  # also when the session dies before its finish hook
    return _cluster


def stop_cluster() -> None:
    global _cluster
    if _cluster is not None:
        _cluster.stop()
        _cluster = None


def database_args(data_dir: Path) -> list[str]:
    """The ``parley serve`` flags that put a server with ``data_dir`` on this run's backend:
    none for SQLite, else ``--database-url`` of the database that belongs to the data dir
    (so a restart on the same data dir finds its data again)."""
    if not ON_POSTGRES:
        return []
    return ["--database-url", cluster().database(str(data_dir.resolve()))]


def stored_bytes(data_dir: Path) -> bytes:
    """Everything a server with ``data_dir`` stored in its database (to look for leaks): the
    SQLite file, or a dump of its PostgreSQL database."""
    if not ON_POSTGRES:
        return (data_dir / "parley.db").read_bytes()
    return cluster().dump(str(data_dir.resolve()))
