"""``parley loadtest`` against a real server: its JSON summary's counts are what the plan
must produce and what the server stored, its verifications hold, and the server's rate limit
is waited out (retried by muid) rather than counted as loss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from client.loadtest.plan import Options, build_plan
from client.loadtest.runner import conversation_id
from client.sdk import RestClient
from tests.conftest import ROOT, ServerProcess, unique


def loadtest(server: ServerProcess, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "loadtest",
            "--url",
            server.url,
            "--api-key",
            server.api_key,
            "--json",
            str(out),
            "--no-progress",
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    summary = json.loads(out.read_text()) if out.exists() else {}
    return res.returncode, summary, res.stderr


async def test_loadtest_counts_match_the_plan_and_the_store(
    server: ServerProcess, tmp_path: Path
) -> None:
    prefix = unique("lt")
    opts = Options(
        users=8, groups=2, group_size=4, messages=80, blocked_share=0.2, prefix=prefix, seed=3
    )
    rc, s, err = loadtest(
        server, tmp_path / "s.json",
        "--users", "8", "--groups", "2", "--group-size", "4", "--messages", "80",
        "--blocked-share", "0.2", "--seed", "3", "--prefix", prefix, "--ramp-up", "0.5",
    )  # fmt: skip
    assert rc == 0, err
    plan = build_plan(opts)
    want = plan.expected()
    assert want["blocked"] > 0 and want["kind_media"] > 0 and want["kind_group"] > 0
    assert s["passed"] is True
    assert s["sent"] == s["acked"] == s["completed"] == 80
    assert s["errors"] == 0 and s["incomplete"] == 0
    assert s["blocked"] == s["blocked_as_planned"] == want["blocked"]
    assert s["delivered"] == want["deliveries"]
    assert s["planned"] == want
    v = s["verification"]
    assert v["exactly_once"] and v["no_blocked_delivered"] and v["history_matches"]
    assert v["stored"]["checked"] == 80
    for key in ("send_to_ack_ms", "send_to_delivery_ms"):
        q = s[key]
        assert q["p50"] is not None and q["p50"] <= q["p95"] <= q["p99"] <= q["max"]
    assert s["send_to_delivery_ms"]["n"] == want["deliveries"]
    assert s["msgs_per_s"] > 0

    # What the server stored, read independently of the tool: staff see every message once,
    # each receiver sees exactly the deliverable ones addressed to it, never a blocked one.
    async with RestClient(server.url, api_key=server.api_key) as rest:
        stored: dict[str, dict[str, Any]] = {}
        for cid in {conversation_id(m) for m in plan.messages}:
            for msg in await rest.history(cid, limit=100):
                assert msg["muid"] not in stored
                stored[msg["muid"]] = msg
        assert set(stored) == {m.muid for m in plan.messages}
        for m in plan.messages:
            assert stored[m.muid]["moderationStatus"] == (
                "disapproved" if m.blocked else "approved"
            )
            assert (stored[m.muid]["type"] == "image") == (m.kind == "media")
        receiver = plan.messages[0].receivers[0]
        async with RestClient(server.url, token=await rest.issue_token(receiver)) as as_user:
            seen: set[str] = set()
            for cid in {conversation_id(m) for m in plan.messages if receiver in m.receivers}:
                seen |= {msg["muid"] for msg in await as_user.history(cid, limit=100)}
    mine = {m.muid for m in plan.messages if receiver in m.receivers and not m.blocked}
    blocked_for_me = {m.muid for m in plan.messages if receiver in m.receivers and m.blocked}
    assert mine <= seen
    assert not (seen & blocked_for_me)


async def test_loadtest_waits_out_the_rate_limit(server_factory: Any, tmp_path: Path) -> None:
    limited = server_factory("--rate-limit", "5")
    rc, s, err = loadtest(
        limited, tmp_path / "s.json",
        "--users", "3", "--groups", "1", "--group-size", "3", "--messages", "45",
        "--mix", "direct=1,group=1", "--blocked-share", "0",
    )  # fmt: skip
    assert rc == 0, err
    assert s["sent"] == s["acked"] == 45 and s["errors"] == 0
    assert s["counters"]["retries"] > 0  # refused with ERR_RATE_LIMITED, then resent by muid
    assert s["verification"]["exactly_once"] and s["verification"]["history_matches"]


def test_loadtest_bad_options_and_unreachable_server(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    dead = ServerProcess(data_dir=tmp_path, port=1, api_key="k")
    rc, _, err = loadtest(dead, out, "--users", "1")
    assert rc == 2 and "at least 2 users" in err
    rc, _, err = loadtest(dead, out, "--mix", "voice=3")
    assert rc == 2 and "mix" in err
    rc, _, err = loadtest(dead, out, "--users", "2", "--groups", "0", "--messages", "1")
    assert rc == 1 and "ConnectError" in err
    assert not out.exists()


async def test_loadtest_over_tls_needs_insecure_for_a_self_signed_certificate(
    server_factory: Any, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    srv = server_factory(
        "--rate-limit", "0", "--cert-file", str(certs / "dev.crt"),
        "--key-file", str(certs / "dev.key"), tls=True,
    )  # fmt: skip
    assert srv.url.startswith("https://")
    small = ("--users", "4", "--groups", "1", "--group-size", "3", "--messages", "24")
    rc, s, err = loadtest(srv, tmp_path / "refused.json", *small)
    assert rc == 1 and "CERTIFICATE_VERIFY_FAILED" in err and s == {}
    rc, s, err = loadtest(srv, tmp_path / "s.json", *small, "--insecure")
    assert rc == 0, err
    assert s["sent"] == s["acked"] == 24 and s["passed"] is True
