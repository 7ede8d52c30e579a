"""The audit log's hash chain: `parley audit verify` holds on a real server's log, and names
the first record someone edited in the database (both backends)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys

from tests.conftest import ROOT, ServerProcess, world_on
from tests.pg import ON_POSTGRES, cluster, database_args


def parley(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_verify_holds_then_names_the_edited_record(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with world_on(srv) as w:
        alice = await w.user("alice")
        bob = await w.user("bob")
        await w.rest.request("POST", f"/users/{alice}/restrictions", json={"kind": "mute"})
        entries = (await w.rest.audit(since=0))["entries"]
    srv.stop()
    where = database_args(srv.data_dir) or ["--data-dir", str(srv.data_dir)]
    ok = parley("audit", "verify", *where)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "audit chain holds" in ok.stdout
    lines = parley("audit", "export", *where).stdout.splitlines()
    exported = [json.loads(line) for line in lines]
    assert len(exported) >= len(entries) and all(e["hash"] for e in exported)
    assert all(b["prevHash"] == a["hash"] for a, b in itertools.pairwise(exported))
    # Someone rewrites who created bob: verify fails at exactly that record.
    target = next(e for e in entries if e["action"] == "user.create" and e["target"] == bob)
    sql = f"UPDATE audit SET actor = 'nobody' WHERE id = {int(target['id'])}"
    if ON_POSTGRES:
        cluster().psql(sql, database=where[1].rsplit("/", 1)[1])
    else:
        conn = sqlite3.connect(srv.data_dir / "parley.db")
        with conn:
            conn.execute(sql)
        conn.close()
    broken = parley("audit", "verify", *where)
    assert broken.returncode == 1
    assert f"broken at record {target['id']}" in broken.stdout
