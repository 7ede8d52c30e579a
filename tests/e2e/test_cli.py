"""The `parley` command: help for every flag, hand-made tokens, clean shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from server.crypto import KeyRing
from tests.conftest import ROOT, ServerProcess, unique
from tests.pg import ON_POSTGRES


def parley(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_help_explains_every_flag() -> None:
    out = parley("serve", "--help")
    assert out.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--insecure-http",
        "--api-key",
        "--demo",
        "--log-level",
        "--rate-limit",
        "--allowed-origins",
        "--config",
    ):
        assert flag in out.stdout, flag
    for command in ("serve", "keys", "certs", "token"):
        assert command in parley("--help").stdout


async def test_token_command_mints_a_working_token(server: ServerProcess) -> None:
    uid = unique("cli")
    headers = {"X-API-Key": server.api_key}
    httpx.post(f"{server.url}/api/v1/users", json={"uid": uid, "name": "C"}, headers=headers)
    out = parley("token", uid, "--data-dir", str(server.data_dir), "--ttl", "60")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    r = httpx.get(
        f"{server.url}/api/v1/me/blocked-users", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json() == {"uids": []}


def test_sigterm_shuts_down_cleanly(server_factory: type[ServerProcess]) -> None:
    srv = server_factory()  # type: ignore[call-arg]
    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert srv.proc.wait(15) in (0, -signal.SIGTERM)
    assert srv.log_path is not None and "Traceback" not in srv.log_path.read_text()
    # The store was closed: SQLite checkpoints and removes the WAL when the last connection
    # closes cleanly (after a kill -9 it stays behind). PostgreSQL keeps no file here.
    if ON_POSTGRES:
        return
    assert (srv.data_dir / "parley.db").exists()
    assert not (srv.data_dir / "parley.db-wal").exists()


def test_token_command_stores_no_api_key(tmp_path: Path) -> None:
    # It only signs: an API key it generated would sit unused beside --api-key / PARLEY_API_KEY.
    out = parley("token", "someone", "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert list(json.loads((tmp_path / "secrets.json").read_text())) == ["jwt_secret"]


def test_keys_rotate_mints_random_ids_and_never_a_keyring(tmp_path: Path) -> None:
    out = parley("keys", "rotate", "--data-dir", str(tmp_path))
    assert out.returncode == 2
    assert f"no keyring to rotate: {tmp_path / 'keys.json'}" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "keys.json").exists()

    legacy = KeyRing("k1", {"k1": os.urandom(32)})  # the ids of keyrings before random ids
    (tmp_path / "keys.json").write_text(legacy.to_json())
    out = parley("keys", "rotate", "--data-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    ring = KeyRing.from_json((tmp_path / "keys.json").read_text())
    assert re.fullmatch(r"k[0-9a-f]{16}", ring.current) and ring.current in out.stdout
    assert ring.keys == {**legacy.keys, ring.current: ring.keys[ring.current]}
