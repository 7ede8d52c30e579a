"""Soak test (not in CI): many connections, steady mixed traffic, for minutes.

Starts Parley (moderation on, default rules, pinned to core 0; this process pins itself to
core 1), opens ``--conns`` authenticated connections (default 5,000), then sends ``--rate``
messages/s (default 500) for ``--minutes`` (default 10): a mix of 1:1 and group messages
(``--group-share`` of them to groups of ``--group-size``), ``--blocked-pct`` (5%) of the
texts carrying a word on the default profanity list. Every minute it prints server memory
and CPU, messages sent/completed/in flight, and send->ack, send->delivery and send->verdict
percentiles for that minute; at the end, lost messages (approved but not delivered to every
receiver), duplicated deliveries, blocked messages that leaked to receivers, and errors.

    .venv/bin/python bench/soak.py                 # 10 minutes, 5,000 connections
    .venv/bin/python bench/soak.py --minutes 2 --conns 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import API_KEY, BENCH, GEN_CPU, loadavg, proc_cpu_s, proc_rss, start_server
from load import (
    BLOCK_WORD,
    Rec,
    Tracker,
    close_all,
    frame,
    make_texts,
    open_all,
    setup_users,
    summary,
)

perf = time.perf_counter


def raise_nofile(need: int) -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def cell(values: Any) -> str:
    s = summary(values)
    return "-" if not s["n"] else f"{s['p50']:.1f}/{s['p99']:.1f}"


async def soak(args: argparse.Namespace, server_pid: int, base_url: str) -> dict[str, Any]:
    prefix = f"s{int(time.time()) % 100000}-"
    n = args.conns
    uids = [f"{prefix}u{i}" for i in range(n)]
    n_group_users = min(n, int(n * args.group_users))
    n_group_users -= n_group_users % args.group_size
    groups: dict[str, list[str]] = {}
    group_plan: list[tuple[int, str, str, int, list[str]]] = []
    for gi in range(n_group_users // args.group_size):
        members = uids[gi * args.group_size : (gi + 1) * args.group_size]
        guid = f"{prefix}g{gi}"
        groups[guid] = members
        for k, m in enumerate(members):
            others = [u for u in members if u != m]
            group_plan.append((gi * args.group_size + k, "group", guid, len(others), others))
    pair_plan = [
        (i, "user", uids[i ^ 1], 1, [uids[i ^ 1]])
        for i in range(n_group_users, n - (n - n_group_users) % 2)
    ]
    t0 = perf()
    print(f"setup: {n} users, {len(groups)} groups of {args.group_size} ...", flush=True)
    tokens = await setup_users(base_url, API_KEY, uids, groups, conc=32)
    print(f"  {perf() - t0:.1f} s; connecting ...", flush=True)
    tracker = Tracker(strict=True)
    rss_before = proc_rss(server_pid)
    t0 = perf()
    clients, errors = await open_all(
        base_url.replace("http", "ws", 1) + "/ws", uids, tokens, tracker, 100
    )
    connected = sum(1 for c in clients if c is not None)
    print(
        f"  {connected} connected ({errors} errors) in {perf() - t0:.1f} s; server RSS "
        f"{rss_before / 2**20:.0f} -> {proc_rss(server_pid) / 2**20:.0f} MB",
        flush=True,
    )
    group_plan = [p for p in group_plan if clients[p[0]] is not None]
    pair_plan = [p for p in pair_plan if clients[p[0]] is not None]
    texts = make_texts()
    pool = len(texts)
    per_sender = [0] * n
    rate = args.rate
    total = int(rate * args.minutes * 60)
    group_pct = int(args.group_share * 100) if group_plan else 0
    if not pair_plan:
        group_pct = 100
    minutes: list[dict[str, Any]] = []
    memory: list[tuple[float, float]] = []
    t_start = perf()

    async def sample_memory() -> None:
        while True:
            memory.append((round(perf() - t_start, 1), round(proc_rss(server_pid) / 2**20, 1)))
            await asyncio.sleep(10)

    async def report(period: float) -> None:
        idx = [0, 0, 0, 0]
        last = dict(tracker.c)
        cpu0, gen0, w0 = proc_cpu_s(server_pid), _self_cpu(), perf()
        minute = 0
        print(
            f"\n{'min':>3} {'sent':>7} {'done':>7} {'inflt':>6} {'RSS MB':>7} {'srvCPU%':>7} "
            f"{'genCPU%':>7} {'ack p50/p99':>13} {'deliv p50/p99':>15} {'verdict p50/p99':>16} "
            f"{'dup':>4} {'leak':>4} {'err':>4}",
            flush=True,
        )
        while True:
            await asyncio.sleep(period)
            minute += 1
            c = dict(tracker.c)
            cpu1, gen1, w1 = proc_cpu_s(server_pid), _self_cpu(), perf()
            arrays = (tracker.ack, tracker.deliver, tracker.verdict, tracker.ack_verdict)
            sl = [a[i:] for a, i in zip(arrays, idx, strict=True)]
            idx = [len(a) for a in arrays]
            d = {k: c.get(k, 0) - last.get(k, 0) for k in c}
            errs = sum(v for k, v in d.items() if k.startswith("error"))
            row = {
                "minute": minute,
                "sent": d.get("sent", 0),
                "completed": d.get("completed", 0),
                "in_flight": len(tracker.pending),
                "server_rss_mb": round(proc_rss(server_pid) / 2**20, 1),
                "server_cpu_pct": round(100 * (cpu1 - cpu0) / (w1 - w0), 1),
                "gen_cpu_pct": round(100 * (gen1 - gen0) / (w1 - w0), 1),
                "ack_ms": summary(sl[0]),
                "delivery_ms": summary(sl[1]),
                "verdict_ms": summary(sl[2]),
                "ack_to_verdict_ms": summary(sl[3]),
                "dup": d.get("dup_deliveries", 0),
                "leak": d.get("leaked_deliveries", 0),
                "errors": errs,
                "loadavg": os.getloadavg()[0],
            }
            minutes.append(row)
            print(
                f"{minute:>3} {row['sent']:>7} {row['completed']:>7} {row['in_flight']:>6} "
                f"{row['server_rss_mb']:>7.0f} {row['server_cpu_pct']:>7.1f} "
                f"{row['gen_cpu_pct']:>7.1f} {cell(sl[0]):>13} {cell(sl[1]):>15} "
                f"{cell(sl[2]):>16} {row['dup']:>4} {row['leak']:>4} {errs:>4}",
                flush=True,
            )
            last, cpu0, gen0, w0 = c, cpu1, gen1, w1

    seq = 0

    async def scheduler() -> None:
        nonlocal seq
        k = gk = pk = 0
        while k < total:
            due = min(total, int((perf() - t_start) * rate) + 1)
            while k < due:
                if (k * 7) % 100 < group_pct:
                    i, rtype, rcv, nrecv, rlist = group_plan[gk % len(group_plan)]
                    gk += 1
                else:
                    i, rtype, rcv, nrecv, rlist = pair_plan[pk % len(pair_plan)]
                    pk += 1
                sched = t_start + k / rate
                k += 1
                seq += 1
                muid = f"{prefix}{seq}"
                text = texts[(i * 131 + per_sender[i]) % pool]
                per_sender[i] += 1
                blocked = (seq * 37) % 100 < args.blocked_pct
                if blocked:
                    text = f"{text} {BLOCK_WORD}"
                tracker.sent(muid, Rec(sched, i, nrecv, blocked), rlist)
                client = clients[i]
                assert client is not None
                with contextlib.suppress(Exception):
                    await client.ws.send(frame(muid, rtype, rcv, text))
            await asyncio.sleep(0.005)

    period = min(60.0, args.minutes * 60)
    side = [asyncio.create_task(sample_memory()), asyncio.create_task(report(period))]
    await scheduler()
    await asyncio.sleep(max(0.0, t_start + args.minutes * 60 - perf()) + 0.5)
    tracker.sending_over = True
    if tracker.pending:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(tracker.drained.wait(), args.drain)
    for t in side:
        t.cancel()
    c = tracker.c
    result = {
        "conns": n,
        "connected": connected,
        "connect_errors": errors,
        "groups": len(groups),
        "rate": rate,
        "minutes": args.minutes,
        "sent": c["sent"],
        "completed": c["completed"],
        "lost": tracker.lost(),
        "incomplete": len(tracker.pending),
        "duplicated_deliveries": c["dup_deliveries"],
        "leaked_blocked_deliveries": c["leaked_deliveries"],
        "late_deliveries": c["late_deliveries"],
        "errors": {k: v for k, v in c.items() if k.startswith("error")},
        "verdicts": {k: v for k, v in c.items() if k.startswith("verdict_")},
        "blocked_as_intended": c["blocked_as_intended"],
        "blocked_clean_text": c["blocked_clean_text"],
        "missed_block": c["missed_block"],
        "disapproved_by_rule": dict(tracker.reasons),
        "ack_ms": summary(tracker.ack),
        "delivery_ms": summary(tracker.deliver),
        "verdict_ms": summary(tracker.verdict),
        "per_minute": minutes,
        "server_rss_mb_every_10s": memory,
    }
    await close_all(clients)
    return result


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--conns", type=int, default=5000)
    p.add_argument("--rate", type=float, default=500.0, help="messages/s in total")
    p.add_argument("--group-size", type=int, default=10)
    p.add_argument("--group-users", type=float, default=0.2, help="share of users in groups")
    p.add_argument("--group-share", type=float, default=0.3, help="share of messages to groups")
    p.add_argument("--blocked-pct", type=float, default=5.0)
    p.add_argument("--sync", default="FULL", choices=["NORMAL", "FULL"])
    p.add_argument("--drain", type=float, default=30.0)
    p.add_argument("--out", default=str(BENCH / "results-soak.json"))
    args = p.parse_args()
    nofile = raise_nofile(args.conns * 2 + 1024)  # the server inherits it too
    if (os.cpu_count() or 1) > int(GEN_CPU):
        os.sched_setaffinity(0, {int(GEN_CPU)})
    print(f"load before: {loadavg()}  RLIMIT_NOFILE {nofile}", flush=True)
    server = start_server("parley", label="soak", sync=args.sync)
    try:
        try:
            import uvloop

            res = uvloop.run(soak(args, server.pid, server.base_url))
        except ImportError:
            res = asyncio.run(soak(args, server.pid, server.base_url))
    finally:
        server.stop()
    print(
        f"\nsent {res['sent']}  completed {res['completed']}  lost {res['lost']}  "
        f"incomplete {res['incomplete']}  duplicated {res['duplicated_deliveries']}  "
        f"leaked blocked {res['leaked_blocked_deliveries']}  errors {res['errors']}"
    )
    print(
        f"verdicts {res['verdicts']}  blocked as intended {res['blocked_as_intended']}  "
        f"clean text blocked {res['blocked_clean_text']}  missed {res['missed_block']}  "
        f"by rule {res['disapproved_by_rule']}"
    )
    print(
        f"overall ms p50/p99: ack {res['ack_ms']['p50']}/{res['ack_ms']['p99']}  "
        f"delivery {res['delivery_ms']['p50']}/{res['delivery_ms']['p99']}  "
        f"verdict {res['verdict_ms']['p50']}/{res['verdict_ms']['p99']}"
    )
    print(
        "server RSS MB every 10 s:", " ".join(f"{m:.0f}" for _, m in res["server_rss_mb_every_10s"])
    )
    print(f"load after: {loadavg()}")
    with open(args.out, "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
