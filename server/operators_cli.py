"""``parley operators add|passwd|disable|enable|unlock|totp|list``: operator accounts from the
command line (issue 17), over the same service the dashboard uses, so every change is audited
(actor ``cli``). ``cli.py`` opens the storage (SQLite in the data dir or ``--database-url``);
a running server sees the change on the operator's next request."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from server.clock import SYSTEM_CLOCK
from server.errors import ClientError
from server.services.operators import Enrolment, OperatorService
from server.storage.ports import OperatorRepository

CLI_ACTOR = "cli"
COMMANDS = ("add", "passwd", "disable", "enable", "unlock", "totp", "list")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: object) -> None:
    """The ``operators`` subcommands; ``common`` adds --config, --data-dir (``cli.py``)."""
    ops = sub.add_parser("operators", help="manage the dashboard's operator accounts")
    ops_sub = ops.add_subparsers(dest="operators_command", required=True)
    helps = {
        "add": "add an operator (asks for the password, or reads it from stdin)",
        "passwd": "set an operator's password (also unlocks it and ends its sessions)",
        "disable": "disable an operator (ends its sessions)",
        "enable": "enable a disabled operator",
        "unlock": "unlock an operator locked by failed sign-ins",
        "totp": "enrol a new TOTP secret and recovery codes (printed once)",
        "list": "list the operators",
    }
    for name in COMMANDS:
        cmd = ops_sub.add_parser(name, help=helps[name])
        common(cmd)  # type: ignore[operator]
        cmd.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in the data dir)")
        if name != "list":
            cmd.add_argument("name")
        if name == "add":
            cmd.add_argument(
                "--role", choices=["viewer", "moderator", "admin"], default="moderator"
            )
            cmd.add_argument("--totp", action="store_true", help="also enrol TOTP now")
            cmd.add_argument(
                "--groups",
                help="comma-separated group ids: a group moderator who sees and acts on"
                " these groups only (viewers and moderators)",
            )
        if name in ("add", "passwd"):
            cmd.add_argument(
                "--password-stdin",
                action="store_true",
                help="read the password from the first line of stdin (no prompt)",
            )


def _password(args: argparse.Namespace, stdin: TextIO) -> str:
    if args.password_stdin or not stdin.isatty():
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("parley: the passwords differ")
    return first


def _print_totp(enrolled: tuple[Enrolment, list[str]], out: TextIO) -> None:
    enrolment, codes = enrolled
    print(f"TOTP secret: {enrolment.secret}", file=out)
    print(f"otpauth URI: {enrolment.uri}", file=out)
    print("recovery codes (each works once; shown only now):", file=out)
    for code in codes:
        print(f"  {code}", file=out)


async def run(
    args: argparse.Namespace,
    store: OperatorRepository,
    *,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """Run one subcommand; 0 on success, 1 (with the reason on stderr) on a refusal."""
    service = OperatorService(store, clock=SYSTEM_CLOCK, csrf_secret="-")
    command = args.operators_command
    try:
        if command == "list":
            for o in await service.operators():
                flags = [f for f, on in (("disabled", o.disabled), ("locked", o.locked)) if on]
                totp = "totp" if o.totp_secret else "no-totp"
                scope = ",".join(o.groups) or "all"
                state = ",".join(flags) or "active"
                print(f"{o.name}\t{o.role}\t{totp}\t{state}\tgroups:{scope}", file=out)
        elif command == "add":
            groups = [g.strip() for g in (args.groups or "").split(",") if g.strip()]
            await service.add(CLI_ACTOR, args.name, args.role, _password(args, stdin), groups)
            print(f"added operator {args.name} ({args.role})", file=out)
            if args.totp:
                _print_totp(await service.reset_totp(CLI_ACTOR, args.name), out)
        elif command == "passwd":
            await service.set_password(CLI_ACTOR, args.name, _password(args, stdin))
            print(f"password of {args.name} set; its sessions are ended", file=out)
        elif command in ("disable", "enable"):
            await service.set_disabled(CLI_ACTOR, args.name, command == "disable")
            print(f"{args.name} {command}d", file=out)
        elif command == "unlock":
            await service.update(CLI_ACTOR, args.name, {"locked": False})
            print(f"{args.name} unlocked", file=out)
        elif command == "totp":
            _print_totp(await service.reset_totp(CLI_ACTOR, args.name), out)
    except ClientError as exc:
        print(f"parley: {exc.message}", file=sys.stderr)
        return 1
    return 0
