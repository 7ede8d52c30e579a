"""Data keys and secrets at start: a server never runs without the keys its rows need, never
mints a keyring over existing data, keeps its files private, and keeps no stale API key."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client.sdk import RestClient
from server.crypto import KeyRing
from server.storage.sqlite import SqliteStorage, key_ids_in_use
from tests.conftest import ROOT, ServerProcess, free_port
from tests.pg import ON_POSTGRES, database_args

RANDOM_KID = re.compile(r"k[0-9a-f]{16}")


def serve_cmd(data_dir: Path, port: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--insecure-http",
        "--log-level",
        "warning",
        *database_args(data_dir),
        *args,
    ]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    return {**env, **extra}


def refused(data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `parley serve`, which is expected to refuse to start (not to serve)."""
    out = subprocess.run(
        serve_cmd(data_dir, free_port()),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(**env),
        check=False,
    )
    assert out.returncode == 2, out
    assert "Traceback" not in out.stdout + out.stderr
    return out


@contextlib.contextmanager
def serving(data_dir: Path, *args: str) -> Iterator[tuple[str, Path]]:
    """`parley serve` without --api-key (which ServerProcess always passes); yields its URL
    and the file holding its output, and stops it at the end."""
    port = free_port()
    log_path = data_dir.parent / f"plain-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            serve_cmd(data_dir, port, *args),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.05)
        yield url, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def send_one(srv: ServerProcess, text: str) -> int:
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        for uid in ("keys-a", "keys-b"):
            await rest.create_user(uid, uid)
        sent = await rest.send_message(
            sender="keys-a",
            receiverType="user",
            receiver="keys-b",
            category="custom",
            messageType="n",
            data={"v": text},
        )
    return int(sent["id"])


async def test_lost_keyring_refuses_start_until_it_is_restored(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "d")  # type: ignore[call-arg]
    message_id = await send_one(srv, "acknowledged")
    srv.stop()
    keys = srv.data_dir / "keys.json"
    kid = json.loads(keys.read_text())["current"]
    backup = tmp_path / "keys-backup.json"
    keys.rename(backup)

    out = refused(srv.data_dir)
    assert kid in out.stderr and str(keys) in out.stderr
    assert "PARLEY_ENCRYPTION_KEYS" in out.stderr
    assert not keys.exists()  # no keyring minted over the data

    # The wrong keyring (minted elsewhere) is no substitute: its ids differ.
    keys.write_text(KeyRing.generate().to_json())
    assert kid in refused(srv.data_dir).stderr

    backup.replace(keys)
    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        assert (await rest.get_message(message_id))["data"] == {"v": "acknowledged"}
        assert [m["id"] for m in await rest.history("keys-a_user_keys-b")] == [message_id]


@pytest.mark.skipif(ON_POSTGRES, reason="writes the SQLite file itself; see test_postgres_store")
async def test_every_sealed_table_is_checked(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    ring = KeyRing.generate()
    store = SqliteStorage(data_dir / "parley.db", ring)
    await store.open()
    await store.close()
    with contextlib.closing(sqlite3.connect(data_dir / "parley.db")) as db, db:
        db.execute(
            "INSERT INTO reports (message_id, reporter, kid, body, at) VALUES (1, 'u', ?, x'00', 0)",
            ("kreportsreports00",),
        )
        db.execute(
            "INSERT INTO webhook_deliveries (event_id, event, hook_id, url, kid, body, status,"
            " next_at, created_at, updated_at) VALUES ('e', 'x', 'h', 'u', ?, x'00', 'done', 0,"
            " 0, 0)",
            ("kwebhookswebhooks",),
        )
    in_use = {"kreportsreports00", "kwebhookswebhooks"}
    assert key_ids_in_use(data_dir / "parley.db") == in_use
    (data_dir / "keys.json").write_text(ring.to_json())
    out = refused(data_dir)
    assert "kreportsreports00, kwebhookswebhooks" in out.stderr

    # A database from before the kid indexes is read by a plain scan, with the same answer.
    with contextlib.closing(sqlite3.connect(data_dir / "parley.db")) as db, db:
        for table in ("messages", "reports", "webhook_deliveries"):
            db.execute(f"DROP INDEX {table}_kid")
    assert key_ids_in_use(data_dir / "parley.db") == in_use


CORRUPT = {
    "json": ("keys.json", '{"current": "k1", "keys": {"k1": ', "not valid JSON"),
    "shape": ("keys.json", '{"current": "k1"}', "not a keyring"),
    "length": ("keys.json", '{"current": "k1", "keys": {"k1": "AAAA"}}', "3 bytes, not 32"),
    "env-base64": ("", '{"current": "k1", "keys": {"k1": "A*A"}}', "not valid base64"),
}


@pytest.mark.parametrize(("where", "text", "reason"), CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_keyring_gets_a_clear_message(
    tmp_path: Path, where: str, text: str, reason: str
) -> None:
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    if where:
        (data_dir / where).write_text(text)
        out = refused(data_dir)
        assert str(data_dir / where) in out.stderr
        assert (data_dir / where).read_text() == text  # left as it was
    else:
        out = refused(data_dir, PARLEY_ENCRYPTION_KEYS=text)
        assert "PARLEY_ENCRYPTION_KEYS" in out.stderr
        assert not (data_dir / "keys.json").exists()
    assert reason in out.stderr
    assert not (data_dir / "parley.db").exists()  # refused before the database was touched


def test_fresh_data_dir_mints_a_random_key_id_and_keeps_its_files_private(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "d")  # type: ignore[call-arg]
    ring = json.loads((srv.data_dir / "keys.json").read_text())
    assert RANDOM_KID.fullmatch(ring["current"]) and list(ring["keys"]) == [ring["current"]]
    assert mode(srv.data_dir) == 0o700
    if ON_POSTGRES:  # no database file in the data dir: the keys and secrets are private
        assert {p.name: mode(p) for p in srv.data_dir.iterdir()} == {
            p.name: 0o700 if p.is_dir() else 0o600 for p in srv.data_dir.iterdir()
        }
        return
    db = srv.data_dir / "parley.db"
    files = [db, db.with_name("parley.db-wal"), db.with_name("parley.db-shm")]
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    assert {p.name: mode(p) for p in srv.data_dir.iterdir()} == {
        p.name: 0o700 if p.is_dir() else 0o600 for p in srv.data_dir.iterdir()
    }

    srv.stop()  # a database made by an older version (0644) is tightened on the next start
    db.chmod(0o644)
    srv.start()
    assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_explicit_api_key_is_never_stored_and_a_stale_one_is_dropped(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    data_dir = tmp_path / "d"
    data_dir.mkdir(mode=0o700)
    secrets_file = data_dir / "secrets.json"
    secrets_file.write_text(json.dumps({"api_key": "pk_stale", "jwt_secret": "j" * 64}))
    srv = server_factory(data_dir=data_dir)  # type: ignore[call-arg]
    assert json.loads(secrets_file.read_text()) == {"jwt_secret": "j" * 64}
    srv.stop()

    # Dropping --api-key later never brings the old key back: a new one is generated.
    with serving(data_dir) as (url, log):
        stored = json.loads(secrets_file.read_text())
        assert stored["jwt_secret"] == "j" * 64
        assert stored["api_key"] not in ("pk_stale", srv.api_key)
        for key, status in (("pk_stale", 401), (srv.api_key, 401), (stored["api_key"], 200)):
            r = httpx.get(f"{url}/api/v1/moderation/rules", headers={"X-API-Key": key})
            assert r.status_code == status, key
        printed = log.read_text()
        assert f"generated now, in {secrets_file}" in printed
        assert stored["api_key"] not in printed  # not shown outside --demo


def test_the_generated_api_key_is_shown_only_on_a_demos_first_start(tmp_path: Path) -> None:
    def shown(data_dir: Path, *args: str) -> bool:
        with serving(data_dir, *args) as (_, log):
            key = json.loads((data_dir / "secrets.json").read_text())["api_key"]
            printed = log.read_text()
        assert key in printed or str(data_dir / "secrets.json") in printed
        return key in printed

    # stdout ends up in log collectors; the key stays in the 0600 file
    assert not shown(tmp_path / "prod")
    assert shown(tmp_path / "demo", "--demo")
    assert not shown(tmp_path / "demo", "--demo")
