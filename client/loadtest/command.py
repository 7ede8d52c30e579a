"""``parley loadtest``: its options, the live progress bar and the closing summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

from client.loadtest.plan import DEFAULT_BLOCK_WORD, Options, PlanError, build_plan, parse_mix
from client.loadtest.runner import RunConfig, passed, run


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default="http://127.0.0.1:8443",
        help="the server's base URL (https://... or http://...)",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("PARLEY_API_KEY"),
        help="the app's API key (default: $PARLEY_API_KEY); users and groups are created with it",
    )
    p.add_argument("--users", type=int, default=20, help="users, one connection each (default 20)")
    p.add_argument("--groups", type=int, default=2, help="groups (default 2)")
    p.add_argument("--group-size", type=int, default=5, help="members per group (default 5)")
    p.add_argument("--messages", type=int, default=200, help="messages in all (default 200)")
    p.add_argument(
        "--mix",
        default="direct=60,group=30,media=10",
        help="weights of 1:1 text, group text and 1:1 image messages (default %(default)s)",
    )
    p.add_argument(
        "--blocked-share",
        type=float,
        default=0.1,
        help="fraction of text messages carrying --block-word, which must be blocked (default 0.1)",
    )
    p.add_argument(
        "--block-word",
        default=DEFAULT_BLOCK_WORD,
        help="a word the server's rules block (default: one on the default profanity list)",
    )
    p.add_argument(
        "--ramp-up", type=float, default=0.0, help="seconds over which senders start (default 0)"
    )
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second in all; 0: as fast as acked"
    )
    p.add_argument(
        "--window", type=int, default=4, help="unacknowledged messages per user (default 4)"
    )
    p.add_argument("--ack-timeout", type=float, default=30.0, help="seconds to wait for an ack")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to wait, after the last send, for verdicts and deliveries (default 30)",
    )
    p.add_argument("--seed", type=int, default=7, help="seed of the message plan")
    p.add_argument(
        "--prefix", help="prefix of the uids, guids and muids of this run (default: lt-<random>)"
    )
    p.add_argument(
        "--json",
        type=Path,
        default=Path("parley-loadtest.json"),
        help="where to write the summary as JSON (default %(default)s; '-' for stdout)",
    )
    p.add_argument(
        "--insecure", action="store_true", help="accept any TLS certificate (a self-signed one)"
    )
    p.add_argument(
        "--no-history-check",
        action="store_true",
        help="skip comparing the frames with the stored history afterwards",
    )
    p.add_argument(
        "--cleanup", action="store_true", help="erase the run's users and their messages afterwards"
    )
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")


def options(args: argparse.Namespace) -> tuple[Options, RunConfig]:
    """Options and RunConfig from parsed arguments; raises PlanError on nonsense."""
    if not args.api_key:
        raise PlanError("an API key is needed: --api-key or PARLEY_API_KEY")
    if args.window < 1 or args.rate < 0 or args.ramp_up < 0:
        raise PlanError("--window must be >= 1, --rate and --ramp-up >= 0")
    opts = Options(
        users=args.users,
        groups=args.groups,
        group_size=args.group_size,
        messages=args.messages,
        mix=parse_mix(args.mix),
        blocked_share=args.blocked_share,
        block_word=args.block_word,
        seed=args.seed,
        prefix=args.prefix or f"lt-{uuid.uuid4().hex[:6]}",
    )
    cfg = RunConfig(
        url=args.url,
        api_key=args.api_key,
        ramp_up=args.ramp_up,
        window=args.window,
        rate=args.rate,
        ack_timeout=args.ack_timeout,
        drain_timeout=args.drain_timeout,
        verify_tls=not args.insecure,
        check_history=not args.no_history_check,
        cleanup=args.cleanup,
    )
    return opts, cfg


def _print_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(title="parley loadtest", show_header=False)
    v = summary["verification"]
    ack, dl = summary["send_to_ack_ms"], summary["send_to_delivery_ms"]

    def ok(flag: object) -> str:
        return {True: "[green]yes[/]", False: "[red]NO[/]", None: "not checked"}[flag]  # type: ignore[index]

    rows = [
        ("sent / acked", f"{summary['sent']} / {summary['acked']}"),
        ("delivered", str(summary["delivered"])),
        ("blocked", f"{summary['blocked']} (planned {summary['planned']['blocked']})"),
        ("errors", f"{summary['errors']} {summary['errors_by_code'] or ''}"),
        ("msgs/s", str(summary["msgs_per_s"])),
        ("send->ack ms p50/p95/p99", f"{ack['p50']} / {ack['p95']} / {ack['p99']}"),
        ("send->delivery ms p50/p95/p99", f"{dl['p50']} / {dl['p95']} / {dl['p99']}"),
        ("exactly once", ok(v["exactly_once"])),
        ("no blocked message delivered", ok(v["no_blocked_delivered"])),
        ("history matches", ok(v["history_matches"])),
    ]
    for k, val in rows:
        table.add_row(k, val)
    console.print(table)


def main(args: argparse.Namespace) -> int:
    """Run the load test; 0 when every verification held and nothing failed, 1 if not, 2
    on bad options."""
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        print("parley loadtest needs the 'loadtest' extra: pip install 'parley[loadtest]'")
        return 2

    console = Console(stderr=True)
    try:
        opts, cfg = options(args)
        plan = build_plan(opts)
    except PlanError as exc:
        print(f"parley loadtest: {exc}", file=sys.stderr)
        return 2
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counts]}"),
        console=console,
        disable=args.no_progress,
        transient=False,
    )
    tasks = {
        "connected": bar.add_task("connected", total=opts.users, counts=""),
        "messages": bar.add_task("messages", total=opts.messages, counts=""),
    }

    def report(what: str, done: int, total: int, counts: dict[str, int]) -> None:
        shown = "  ".join(f"{k} {v}" for k, v in counts.items())
        bar.update(tasks[what], completed=done, total=total, counts=shown)

    console.print(
        f"loading {cfg.url}: {opts.users} users, {opts.groups} groups, {opts.messages} messages"
        f" (prefix {opts.prefix})"
    )
    with bar:
        try:
            summary = asyncio.run(run(plan, cfg, report))
        except Exception as exc:  # the server is unreachable or refused the setup
            console.print(f"[red]parley loadtest: {type(exc).__name__}: {exc}[/]")
            return 1
    summary["config"] = {
        "url": cfg.url,
        "users": opts.users,
        "groups": opts.groups,
        "group_size": opts.group_size,
        "messages": opts.messages,
        "mix": dict(opts.mix),
        "blocked_share": opts.blocked_share,
        "ramp_up_s": cfg.ramp_up,
        "rate": cfg.rate,
        "window": cfg.window,
        "seed": opts.seed,
        "prefix": opts.prefix,
    }
    summary["passed"] = passed(summary)
    _print_summary(summary, console)
    text = json.dumps(summary, indent=2)
    if str(args.json) == "-":
        print(text)
    else:
        args.json.write_text(text + "\n")
        console.print(f"summary written to {args.json}")
    return 0 if summary["passed"] else 1
