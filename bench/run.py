"""Parley against the bare relay B, one server after another, in one run.

Starts ``bench/bare_relay.py`` (B), then Parley with ``--sqlite-synchronous NORMAL`` and
``FULL`` (moderation on, ``--rate-limit 0``), each on a free port pinned to core 0, and drives
each with the identical ``bench/load.py`` pinned to core 1. The rules of each Parley server
are set through the API after start (``harness.set_moderation``): ``P-NORMAL`` and ``P-FULL``
run the keyword-only rules (the default rules without the local AI rules, as every default
was before those were on: the figures compare with earlier runs and the bare relay);
``P-AI`` adds the local AI text rules the cascade covers (the default AI rules and
``ai-scam``) with the cascade off, ``P-AI-CASC`` the same with the cascade on (the
``aiCascade`` setting), and ``P-DEFAULT`` is a fresh server as it ships (``FULL``, the default
AI rules and the cascade on), so the table shows AI-on, with and without the cascade, next to
keyword-only in the same run.
Prints a table with ratios to B and writes ``bench/results.json``.

    .venv/bin/python bench/run.py            # full, about 8 minutes
    .venv/bin/python bench/run.py --quick    # about 2 minutes
    .venv/bin/python bench/run.py --baseline 0a33e18   # adds P-FULL of that commit (before/after)
    .venv/bin/python bench/run.py --quick --servers P-NORMAL,P-AI,P-AI-CASC --only "pair closed"

``--baseline REF`` checks REF out into a temporary worktree and runs its Parley (FULL) in the
same run, after this tree's servers, so a change is measured against its parent on the same
machine at the same time; with ``--baseline-servers P-AI,P-AI-CASC`` REF runs those servers
instead (``P-AI@REF``, ...: the same settings, REF's code).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (
    BENCH,
    ROOT,
    loadavg,
    run_load,
    set_moderation,
    start_server,
)

SERVERS = [
    ("B", "bare", {}),
    ("P-NORMAL", "parley", {"sync": "NORMAL"}),
    ("P-AI", "parley", {"sync": "NORMAL"}),
    ("P-AI-CASC", "parley", {"sync": "NORMAL"}),
    ("P-FULL", "parley", {"sync": "FULL"}),
    ("P-DEFAULT", "parley", {"sync": "FULL"}),
]
#: The rules each Parley server runs (``harness.MODERATION_PROFILES``).
PROFILE = {
    "P-NORMAL": "keywords",
    "P-FULL": "keywords",
    "P-AI": "ai",
    "P-AI-CASC": "ai-cascade",
    "P-DEFAULT": "default",
}
#: Scenarios run only when ``--only`` names them.
EXPLICIT = {"pair closed distinct"}


def scenarios(quick: bool, rate: float) -> list[tuple[str, list[str], bool]]:
    """(name, load.py args, parley_only)."""
    d = "5" if quick else "20"
    idle_n = "500" if quick else "2000"
    return [
        ("idle", ["--mode", "idle", "--conns", idle_n, "--concurrency", "50", "--hold", "2"], False),
        ("connect", ["--mode", "connect", "--conns", "300" if quick else "1000", "--concurrency", "50"], False),
        ("pair closed", ["--mode", "pair", "--conns", "100", "--window", "4", "--duration", d], False),
        # only when named in --only: every text new, so the per-text caches never help
        ("pair closed distinct", ["--mode", "pair", "--conns", "100", "--window", "4", "--duration", d, "--distinct"], True),
        ("pair open", ["--mode", "pair", "--conns", "100", "--rate", str(rate), "--duration", d], False),
        ("group100 closed", ["--mode", "group", "--conns", "100", "--group-size", "100", "--senders", "4", "--window", "2", "--duration", d], False),
        ("pair custom closed", ["--mode", "pair", "--conns", "100", "--window", "4", "--duration", d, "--category", "custom"], True),
    ]  # fmt: skip


def fmt(v: Any, nd: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def lat(r: dict[str, Any], key: str) -> str:
    s = r.get(key) or {}
    if not s.get("n"):
        return "-"
    return f"{s['p50']:.1f}/{s['p99']:.1f}"


def ratio(a: Any, b: Any) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.3f}"


def print_tables(results: list[dict[str, Any]]) -> None:
    base = {(r["scenario"]): r for r in results if r["server"] == "B"}
    msg_rows = [r for r in results if r.get("mode") in ("pair", "group")]
    head = (
        f"{'scenario':<19} {'server':<9} {'msgs/s':>8} {'deliv/s':>8} {'xB':>6} "
        f"{'ack p50/p99':>13} {'deliv p50/p99':>15} {'verdict p50/p99':>15} "
        f"{'srvCPU%':>7} {'msg/CPUs':>9} {'xB':>6} {'genCPU%':>7} {'ok':>4}"
    )
    print("\nMessages (latencies in ms; xB = ratio to the bare relay in the same scenario;")
    print("msg/CPUs = completed messages per server CPU-second)")
    print(head)
    print("-" * len(head))
    for r in msg_rows:
        b = base.get(r["scenario"], {})
        c = r.get("counters", {})
        ok = "yes" if not r.get("incomplete") and not r.get("lost") else "NO"
        print(
            f"{r['scenario']:<19} {r['server']:<9} {fmt(r['msgs_per_s']):>8} "
            f"{fmt(r['deliveries_per_s']):>8} {ratio(r['msgs_per_s'], b.get('msgs_per_s')):>6} "
            f"{lat(r, 'ack_ms'):>13} {lat(r, 'delivery_ms'):>15} {lat(r, 'verdict_ms'):>15} "
            f"{fmt(r.get('server_cpu_pct'), 1):>7} {fmt(r.get('msgs_per_server_cpu_s')):>9} "
            f"{ratio(r.get('msgs_per_server_cpu_s'), b.get('msgs_per_server_cpu_s')):>6} "
            f"{fmt(r.get('gen_cpu_pct'), 1):>7} {ok:>4}"
        )
        extra = {k: v for k, v in c.items() if k.startswith(("error", "verdict_d", "lost", "dup"))}
        if extra or r.get("incomplete"):
            print(f"{'':<19}   note: incomplete={r.get('incomplete')} {extra}")
    print("\nConnections")
    head2 = (
        f"{'scenario':<9} {'server':<9} {'conns':>6} {'conn/s':>8} {'xB':>6} "
        f"{'conn+auth p50/p99 ms':>21} {'srv CPU ms/conn':>15} {'KB/idle conn':>12} {'xB':>6}"
    )
    print(head2)
    print("-" * len(head2))
    for r in results:
        if r.get("mode") not in ("idle", "connect"):
            continue
        b = base.get(r["scenario"], {})
        kb = r.get("server_bytes_per_conn")
        bkb = b.get("server_bytes_per_conn")
        print(
            f"{r['mode']:<9} {r['server']:<9} {fmt(r['connected']):>6} "
            f"{fmt(r['connects_per_s']):>8} {ratio(r['connects_per_s'], b.get('connects_per_s')):>6} "
            f"{lat(r, 'connect_auth_ms'):>21} {fmt(r['server_cpu_ms_per_connect'], 2):>15} "
            f"{fmt(kb / 1024 if kb is not None else None, 1):>12} {ratio(kb, bkb):>6}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short phases (about 2 minutes)")
    p.add_argument("--rate", type=float, default=100.0, help="open-loop msgs/s (all servers)")
    p.add_argument("--only", default="", help="comma-separated scenario names to run")
    p.add_argument(
        "--servers", default="", help="comma-separated server labels to run (e.g. P-AI,P-AI-CASC)"
    )
    p.add_argument("--out", default=str(BENCH / "results.json"))
    p.add_argument("--baseline", default="", help="a git ref to run as P-FULL@REF too")
    p.add_argument(
        "--baseline-servers", default="", help="with --baseline: run these labels from REF"
    )
    args = p.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    t_start = time.monotonic()
    meta: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "quick": args.quick,
        "loadavg_start": loadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
    }
    try:
        import uvloop

        meta["uvloop"] = uvloop.__version__  # uvicorn's loop="auto" picks it for both servers
    except ImportError:
        meta["uvloop"] = None
    print(f"load before: {meta['loadavg_start']}  cpus: {meta['cpus']}  uvloop: {meta['uvloop']}")
    results: list[dict[str, Any]] = []
    picked = {s.strip() for s in args.servers.split(",") if s.strip()}
    servers: list[tuple[str, str, dict[str, Any]]] = [
        s for s in SERVERS if not picked or s[0] in picked
    ]
    worktree = None
    if args.baseline:
        worktree = tempfile.mkdtemp(prefix="parley-baseline-")
        subprocess.run(
            ["git", "worktree", "add", "--detach", worktree, args.baseline],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        meta["baseline"] = args.baseline
        again = [x.strip() for x in args.baseline_servers.split(",") if x.strip()]
        if not again:
            servers.append(
                (f"P@{args.baseline[:7]}", "parley", {"sync": "FULL", "root": Path(worktree)})
            )
        for label, kind, kw in SERVERS:
            if label in again:
                servers.append(
                    (f"{label}@{args.baseline[:7]}", kind, {**kw, "root": Path(worktree)})
                )
    try:
        run_servers(servers, args, only, results)
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", worktree], cwd=ROOT, check=False
            )
    meta["loadavg_end"] = loadavg()
    meta["duration_s"] = round(time.monotonic() - t_start, 1)
    print_tables([r for r in results if "error" not in r])
    print(f"\nload after: {meta['loadavg_end']}  run took {meta['duration_s']} s")
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)
    print(f"wrote {args.out}")


def run_servers(
    servers: list[tuple[str, str, dict[str, Any]]],
    args: argparse.Namespace,
    only: set[str],
    results: list[dict[str, Any]],
) -> None:
    for label, kind, kw in servers:
        server = start_server(kind, label=label, **kw)
        try:
            plain = label.split("@")[0]
            if kind == "parley":
                print(
                    f"  {label}: {set_moderation(server.base_url, PROFILE.get(plain, 'keywords'))}"
                )
            for name, largs, parley_only in scenarios(args.quick, args.rate):
                if (only and name not in only) or (parley_only and kind == "bare"):
                    continue
                if name in EXPLICIT and name not in only:
                    continue
                print(f"  {label:<9} {name:<19} ...", end="", flush=True)
                t0 = time.monotonic()
                try:
                    r = run_load(server, [*largs, "--label", f"{label}:{name}"])
                except Exception as exc:
                    print(f" FAILED: {exc}")
                    results.append({"server": label, "scenario": name, "error": str(exc)})
                    continue
                r.update(server=label, scenario=name)
                results.append(r)
                print(f" {time.monotonic() - t0:.0f}s  load {loadavg().split()[0]}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
