"""This tree's Parley against another commit's, alternating, in one run.

``bench/run.py --baseline REF`` runs the two servers one after the other, so a burst of load
from anything else on the machine lands on one of them only. This runs both at once (each on
the server core, idle while the other is driven) and drives them in turns, scenario by
scenario, swapping the order every round; it prints the median of each figure over the rounds
and the ratio this/REF. A change is within noise when the ratio's spread across rounds
covers 1.

    .venv/bin/python bench/ab.py --baseline ed092c5               # all scenarios, 5 rounds
    .venv/bin/python bench/ab.py --baseline ed092c5 --only "pair closed" --rounds 9
    # both servers as run.py's P-AI-CASC (the local AI rules and the cascade on)
    .venv/bin/python bench/ab.py --baseline ed092c5 --ai cascade --sync NORMAL \
        --only "pair closed,pair closed distinct" --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BENCH, ROOT, loadavg, run_load, set_moderation, start_server
from run import scenarios

# (figure, higher is better) per kind of scenario
FIGURES = {
    "msg": [("msgs_per_s", True), ("msgs_per_server_cpu_s", True)],
    "idle": [("server_bytes_per_conn", False)],
    "connect": [("connects_per_s", True), ("server_cpu_ms_per_connect", False)],
}


def kind_of(largs: list[str]) -> str:
    mode = largs[largs.index("--mode") + 1]
    return "msg" if mode in ("pair", "group") else mode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="the git ref to compare with")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="", help="comma-separated scenario names to run")
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--out", default=str(BENCH / "ab.json"))
    p.add_argument(
        "--ai",
        choices=("off", "on", "cascade", "all", "default"),
        default="off",
        help="off: keyword-only rules (as run.py's P-NORMAL); on / cascade: the local AI rules"
        " (and aiCascade), as P-AI / P-AI-CASC; all: every local AI text rule and aiCascade;"
        " default: each server as it ships",
    )
    p.add_argument("--sync", choices=("NORMAL", "FULL"), default="FULL")
    args = p.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    worktree = tempfile.mkdtemp(prefix="parley-ab-")
    subprocess.run(
        ["git", "worktree", "add", "--detach", worktree, args.baseline],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    print(f"load before: {loadavg()}  rounds: {args.rounds}  baseline: {args.baseline}")
    t0 = time.monotonic()
    table: list[dict[str, Any]] = []
    try:
        for name, largs, _ in scenarios(True, args.rate):
            if only and name not in only:
                continue
            table.append(
                run_scenario(name, largs, Path(worktree), args.rounds, ai=args.ai, sync=args.sync)
            )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", worktree], cwd=ROOT, check=False)
    print(f"\n{'scenario':<19} {'figure':<24} {'this':>10} {args.baseline[:9]:>10} "
          f"{'ratio':>6} {'ratio range':>13}")  # fmt: skip
    for row in table:
        for fig in row["figures"]:
            print(
                f"{row['scenario']:<19} {fig['figure']:<24} {fig['this']:>10,.1f} "
                f"{fig['base']:>10,.1f} {fig['ratio']:>6.3f} "
                f"{fig['ratio_min']:>6.3f}-{fig['ratio_max']:<6.3f}"
            )
    print("(ratio: this/baseline, oriented so that above 1 is better for this tree)")
    print(f"load after: {loadavg()}  run took {time.monotonic() - t0:.0f} s")
    with open(args.out, "w") as fh:
        json.dump({"baseline": args.baseline, "rounds": args.rounds, "rows": table}, fh, indent=1)


def run_scenario(
    name: str, largs: list[str], base_root: Path, rounds: int, ai: str = "off", sync: str = "FULL"
) -> dict[str, Any]:
    """Both servers fresh for the scenario; ``rounds`` alternating runs of the load on each."""
    kind = kind_of(largs)
    this = start_server("parley", label="this", sync=sync)
    base = start_server("parley", label="base", sync=sync, root=base_root)
    profiles = {"off": "keywords", "on": "ai", "cascade": "ai-cascade", "all": "ai-all-cascade"}
    profile = profiles.get(ai, "default")
    for server in (this, base):
        set_moderation(server.base_url, profile)
    runs: dict[str, list[dict[str, Any]]] = {"this": [], "base": []}
    try:
        for i in range(rounds):
            order = [("this", this), ("base", base)]
            for label, server in order if i % 2 == 0 else order[::-1]:
                r = run_load(server, [*largs, "--label", f"{label}:{name}"])
                runs[label].append(r)
            print(f"  {name:<19} round {i + 1}/{rounds} done", flush=True)
    finally:
        this.stop()
        base.stop()
    figures = []
    for fig, higher in FIGURES[kind]:
        a = [float(r.get(fig) or 0) for r in runs["this"]]
        b = [float(r.get(fig) or 0) for r in runs["base"]]
        # ratio per round (pairs run back to back), oriented so > 1 means this tree is better
        pairs = [(x / y if higher else y / x) for x, y in zip(a, b, strict=True) if x and y]
        figures.append(
            {
                "figure": fig,
                "this": statistics.median(a),
                "base": statistics.median(b),
                "ratio": statistics.median(pairs) if pairs else 0.0,
                "ratio_min": min(pairs, default=0.0),
                "ratio_max": max(pairs, default=0.0),
            }
        )
    return {"scenario": name, "figures": figures}


if __name__ == "__main__":
    main()
