"""Scale-out in one run, on the same generator (issue 14 item 7):

- ``embedded``: one Parley process, SQLite (``synchronous=FULL``), the in-process hub;
- ``pg+redis x1``: one Parley process on PostgreSQL (fsync on) and Redis;
- ``pg+redis x2``: two Parley processes on the same PostgreSQL and Redis; connection i goes
  to process i mod 2, so every 1:1 pair spans both processes and each group of 100 has half
  its members on each.

Each configuration runs ``bench/load.py`` (1:1 pairs and groups of 100, closed loop, moderation
on with the keyword-only rules: the default rules with the local AI rules turned off, as
every default was before those were on, so the figures compare with earlier runs;
``--rate-limit 0``). Reported: completed msgs/s, delivery p50/p99,
and messages per CPU-second of every server-side process together (Parley processes,
PostgreSQL's postmaster and backends, redis-server), with the ratio to the embedded process,
and that CPU per message split into Parley (all its processes), PostgreSQL and Redis.

Where each ran: every server-side process (Parley, PostgreSQL, Redis) pinned to core 0, the
generator to core 1 (``taskset``, when there are 2 cores or more). On a 2-core machine two
Parley processes share core 0 with the engines: the figure that carries over to bigger
machines is the efficiency (messages per CPU-second), not the msgs/s.

    .venv/bin/python bench/scale.py            # about 4 minutes
    .venv/bin/python bench/scale.py --quick    # about 1.5 minutes
    .venv/bin/python bench/scale.py --scenario pair --duration 6 --rounds 3 --compare ../main

``--compare ROOT`` also runs the PostgreSQL + Redis configurations from another checkout
(another commit's worktree) in the same run, labelled ``@name``: a before/after on the same
engines and the same machine load. ``--rounds N`` runs the whole set N times, interleaved, and
reports each configuration's median efficiency (the machine is shared; one round is noisy); each
round starts one configuration further on, so none always runs in the same place.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import (
    BENCH,
    GEN_CPU,
    PY,
    ROOT,
    SERVER_CPU,
    Server,
    loadavg,
    set_moderation,
    start_server,
    taskset,
)

from tests.pg import PostgresCluster
from tests.redis_server import RedisServer


def pin(pid: int, cpu: str) -> None:
    """Pin ``pid`` and its threads/children started later to ``cpu`` (best effort)."""
    if taskset(cpu):
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], capture_output=True)


def postmaster_pid(pg: PostgresCluster) -> int:
    return int((pg.data / "postmaster.pid").read_text().split("\n", 1)[0])


def run_load(
    servers: list[Server], args: list[str], trees: list[int], timeout: float = 300
) -> dict[str, Any]:
    first = servers[0]
    cmd = [
        *taskset(GEN_CPU), PY, str(BENCH / "load.py"), "--base-url", first.base_url,
        "--api-key", "bench-api-key-0123456789abcdef", "--server-pid", str(first.pid),
        "--ws-urls", ",".join(s.base_url for s in servers),
        "--cpu-trees", ",".join(str(p) for p in [*(s.pid for s in servers[1:]), *trees]),
        *args,
    ]  # fmt: skip
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode != 0 or not lines:
        raise RuntimeError(f"load.py failed ({res.returncode}):\n{res.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(lines[-1])
    return out


def scenarios(quick: bool, duration: float | None = None) -> list[tuple[str, list[str]]]:
    d = str(duration) if duration else "5" if quick else "15"
    return [
        ("pair closed", ["--mode", "pair", "--conns", "100", "--window", "4", "--duration", d]),
        ("group100 closed", ["--mode", "group", "--conns", "100", "--group-size", "100",
                             "--senders", "4", "--window", "2", "--duration", d]),
    ]  # fmt: skip


def lat(r: dict[str, Any], key: str) -> str:
    s = r.get(key) or {}
    return f"{s['p50']:.1f}/{s['p99']:.1f}" if s.get("n") else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=BENCH / "results-scale.json")
    ap.add_argument("--scenario", choices=["pair", "group100"], help="run only this one")
    ap.add_argument("--duration", type=float, help="seconds of sending per measurement")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole set, interleaved")
    ap.add_argument("--compare", type=Path, help="also run the PG+Redis configs from this checkout")
    ap.add_argument("--no-x2", action="store_true", help="skip the two-process configuration")
    opts = ap.parse_args()
    results: list[dict[str, Any]] = []
    pg = PostgresCluster(durable=True)
    redis = RedisServer()
    pg.start()
    redis.start()
    engines = [postmaster_pid(pg), *([redis.proc.pid] if redis.proc else [])]
    for pid in engines:
        pin(pid, SERVER_CPU)
    try:
        configs: list[tuple[str, int, bool, Path]] = [("embedded", 1, False, ROOT)]
        roots = [ROOT, *([opts.compare.resolve()] if opts.compare else [])]
        for root in roots:
            tag = "" if root == ROOT else f" @{root.name}"
            configs.append((f"pg+redis x1{tag}", 1, True, root))
            if not opts.no_x2:
                configs.append((f"pg+redis x2{tag}", 2, True, root))
        # Round k starts k configurations further on: no configuration always runs right
        # after the same one (a position effect on a shared machine, measured up to 25%).
        runs = [
            (label, count, shared, root, name, load_args)
            for k in range(opts.rounds)
            for label, count, shared, root in configs[k % len(configs) :]
            + configs[: k % len(configs)]
            for name, load_args in scenarios(opts.quick, opts.duration)
            if opts.scenario is None or name.startswith(opts.scenario)
        ]
        for label, count, shared, root, name, load_args in runs:
            servers: list[Server] = []
            extra: list[str] = []
            if shared:
                db = pg.database(f"bench-{label}-{name}-{time.time()}")
                extra = ["--database-url", db, "--redis-url", redis.url(0)]
                redis_flush(redis)
            try:
                data_dir: Path | None = None
                for _ in range(count):
                    srv = start_server(
                        "parley",
                        label=label,
                        sync="FULL",
                        extra=extra,
                        data_dir=data_dir,
                        root=root,
                    )
                    data_dir = srv.data_dir
                    servers.append(srv)
                # keyword-only rules, as every figure of this bench so far (the AI rules'
                # per-message cost is the same in every configuration)
                set_moderation(servers[0].base_url, "keywords")
                time.sleep(1.0)
                r = run_load(servers, load_args, engines if shared else [])
            except RuntimeError as exc:  # one configuration failing does not lose the others
                print(f"{label:<16} {name:<16} failed: {str(exc)[:300]}", flush=True)
                continue
            finally:
                for srv in reversed(servers):
                    srv.stop()
            r.update(config=label, scenario=name, processes=count)
            r["cpu_us_per_msg"] = per_role(r, [s.pid for s in servers], engines if shared else [])
            results.append(r)
            print(
                f"{label:<16} {name:<16} {r['msgs_per_s']:>8,.0f} msg/s  deliv"
                f" {lat(r, 'delivery_ms'):>13} ms  {r['msgs_per_server_cpu_s'] or 0:>7,.0f}"
                f" msg/CPU-s  server CPU {r['server_cpu_pct']}%  lost {r['lost']}"
                f"  CPU us/msg {roles(r)}",
                flush=True,
            )
    finally:
        redis.stop()
        pg.stop()
    summary = summarise(results)
    print()
    print(f"{'config':<16} {'scenario':<16} {'msgs/s':>8} {'deliv p50/p99':>14} "
          f"{'msg/CPU-s':>10} {'x embedded':>10}  CPU us/msg parley/pg/redis")  # fmt: skip
    for r in summary:
        print(
            f"{r['config']:<16} {r['scenario']:<16} {r['msgs_per_s']:>8,.0f} "
            f"{lat(r, 'delivery_ms'):>14} {r['msgs_per_server_cpu_s'] or 0:>10,.0f}"
            f" {r['ratio']:>10}  {roles(r)}"
        )
    meta = {
        "where": f"server-side (Parley, PostgreSQL, Redis) on core {SERVER_CPU}, generator on"
        f" core {GEN_CPU} (taskset: {bool(taskset(GEN_CPU))}); {os.cpu_count()} cores",
        "loadavg_end": loadavg(),
        "quick": opts.quick,
        "rounds": opts.rounds,
        "compare": str(opts.compare) if opts.compare else None,
    }
    opts.out.write_text(
        json.dumps({"meta": meta, "summary": summary, "results": results}, indent=1)
    )
    print(f"\n{meta['where']}; wrote {opts.out}")


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (config, scenario): the round with the median efficiency, and its ratio to
    the median embedded efficiency of that scenario."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["config"], r["scenario"]), []).append(r)
    rows: list[dict[str, Any]] = []
    for runs in groups.values():
        runs.sort(key=lambda r: r.get("msgs_per_server_cpu_s") or 0)
        rows.append(
            {
                **runs[len(runs) // 2],
                "rounds": [r.get("msgs_per_server_cpu_s") for r in runs],
            }
        )
    base = {r["scenario"]: r["msgs_per_server_cpu_s"] for r in rows if r["config"] == "embedded"}
    for r in rows:
        e, eff = base.get(r["scenario"]), r.get("msgs_per_server_cpu_s")
        r["ratio"] = f"{eff / e:.2f}" if e and eff else "-"
    return rows


def per_role(r: dict[str, Any], parley: list[int], engines: list[int]) -> dict[str, float]:
    """Server CPU microseconds per completed message: all Parley processes together, then
    PostgreSQL (postmaster and backends) and Redis (``engines``: those two pids)."""
    done = r.get("completed") or 0
    by = {int(pid): cpu for pid, cpu in (r.get("cpu_s_by_process") or {}).items()}
    if not done:
        return {}
    out = {"parley": round(1e6 * sum(by.get(p, 0.0) for p in parley) / done, 1)}
    for role, pid in zip(("postgres", "redis"), engines, strict=False):
        out[role] = round(1e6 * by.get(pid, 0.0) / done, 1)
    return out


def roles(r: dict[str, Any]) -> str:
    return "/".join(f"{v:.0f}" for v in (r.get("cpu_us_per_msg") or {}).values()) or "-"


def redis_flush(redis: RedisServer) -> None:
    """Each configuration starts from an empty Redis (no stream, presence or buckets)."""
    import socket

    with socket.create_connection(("127.0.0.1", redis.port), timeout=5) as c:
        c.sendall(b"FLUSHALL\r\n")
        c.recv(64)


if __name__ == "__main__":
    main()
