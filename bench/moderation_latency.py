"""What inline moderation costs: message.sent -> message.moderated with the default rules.

One run, four servers one after the other (same flags otherwise, each pinned to core 0, the
generator ``bench/load.py`` on core 1):

- Parley with moderation on, keyword-only (the default rules without the local AI rules,
  ``harness.set_moderation``): the closed-loop max, then p50/p99 of ack ->
  verdict (``message.sent`` to ``message.moderated``), send -> verdict, send -> delivery and
  send -> ack at steady open-loop rates: 1,000 msg/s and 50 % of the max just measured (5 %
  of the texts carry a word from the default profanity list).
- The same with the local AI text rules the cascade covers (the default AI rules and
  ``ai-scam``) and the cascade off: "moderation + AI"; and with the cascade on too (the
  ``aiCascade`` moderation setting; a fresh server's defaults plus ``ai-scam``):
  "moderation + AI + cascade"; and with every local AI text rule (those, the flag rules,
  ``platform-circumvention``: sentence similarity, and ``negative-sentiment``) and the
  cascade on: "every AI text rule + cascade".
- The same server with ``--no-moderation``: there is no verdict, so send -> delivery instead,
  the same way.

    .venv/bin/python bench/moderation_latency.py [--rate 1000] [--duration 10] [--sync FULL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (
    BENCH,
    loadavg,
    run_load,
    set_moderation,
    start_server,
)


def lat(r: dict[str, Any], key: str) -> str:
    s = r.get(key) or {}
    if not s.get("n"):
        return "-"
    return f"{s['p50']:8.1f} {s['p99']:8.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rate", type=float, default=1000.0, help="open-loop msgs/s (besides 50%% of max)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    p.add_argument("--conns", type=int, default=100)
    p.add_argument("--sync", default="FULL", choices=["NORMAL", "FULL"])
    p.add_argument("--out", default=str(BENCH / "results-moderation.json"))
    args = p.parse_args()
    print(f"load before: {loadavg()}")
    common = ["--mode", "pair", "--conns", str(args.conns), "--duration", str(args.duration)]
    runs: dict[str, dict[str, Any]] = {}
    phases = (
        ("moderation on", "keywords"),
        ("moderation + AI", "ai"),
        ("moderation + AI + cascade", "ai-cascade"),
        ("every AI text rule + cascade", "ai-all-cascade"),
    )
    for label, profile in (*phases, ("--no-moderation", "")):
        moderation = bool(profile)
        server = start_server("parley", label=label, sync=args.sync, moderation=moderation)
        try:
            if moderation:
                print(f"{label}: {set_moderation(server.base_url, profile)}")
            top = run_load(server, [*common, "--window", "4"])
            runs[f"{label} | closed max"] = top
            half = round(float(top["msgs_per_s"]) / 2)  # type: ignore[arg-type]
            for rate, name in ((args.rate, f"{args.rate:g}/s"), (half, f"{half}/s = max/2")):
                runs[f"{label} | open {name}"] = run_load(
                    server, [*common, "--rate", str(rate), "--blocked-pct", "5"]
                )
        finally:
            server.stop()
    print(f"\nParley, sqlite synchronous={args.sync}, {args.conns} connections in pairs (ms)")
    head = (
        f"{'run':<40} {'msgs/s':>8} {'sent->verdict':>17} {'send->verdict':>17} "
        f"{'send->delivery':>17} {'send->ack':>17} {'srvCPU%':>7} {'msg/CPUs':>8} {'genCPU%':>7}"
    )
    print(f"{'':<40} {'':>8} {'p50 p99 (ack->mod)':>17} {'p50      p99':>17} {'p50      p99':>17}")
    print(head)
    print("-" * len(head))
    for name, r in runs.items():
        print(
            f"{name:<40} {r['msgs_per_s']:>8,.0f} {lat(r, 'ack_to_verdict_ms'):>17} "
            f"{lat(r, 'verdict_ms'):>17} {lat(r, 'delivery_ms'):>17} {lat(r, 'ack_ms'):>17} "
            f"{r['server_cpu_pct']:>7.1f} {r['msgs_per_server_cpu_s'] or 0:>8,.0f} "
            f"{r['gen_cpu_pct']:>7.1f}"
        )
        c = r["counters"]
        print(
            f"{'':<40} verdicts approved={c.get('verdict_approved', 0)} "
            f"disapproved={c.get('verdict_disapproved', 0)} (profanity as intended="
            f"{c.get('blocked_as_intended', 0)}, clean text blocked={c.get('blocked_clean_text', 0)},"
            f" missed={c.get('missed_block', 0)}) incomplete={r['incomplete']}"
        )
    off = runs.get("--no-moderation | closed max", {})
    for name, *_ in phases:
        on = runs.get(f"{name} | closed max", {})
        if on.get("msgs_per_s") and off.get("msgs_per_s"):
            print(
                f"\nthroughput {name} / without: {on['msgs_per_s'] / off['msgs_per_s']:.3f}"
                f"  (server CPU per message: {1e3 / on['msgs_per_server_cpu_s']:.2f} ms vs"
                f" {1e3 / off['msgs_per_server_cpu_s']:.2f} ms)"
            )
    print(f"load after: {loadavg()}")
    with open(args.out, "w") as fh:
        json.dump(runs, fh, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
