"""The ``parley`` command: ``serve``, ``moderation-worker``, ``keys rotate``, ``certs``,
``token``, ``audit``, ``migrate-store``, ``loadtest``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from server.certs import ensure_dev_cert
from server.crypto import rotate_keyring
from server.errors import MissingKeys
from server.settings import Settings, load_settings

DEFAULTS = Settings()


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", type=Path, help="TOML file with settings (a [parley] table or top-level keys)"
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help=f"where the database, keys and secrets live (default {DEFAULTS.data_dir})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Parley: a self-hostable real-time chat server with inline moderation. "
        "Every flag can also be set as PARLEY_<NAME> in the environment or in a TOML file.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (HTTPS + WSS on one port)")
    _add_common(serve)
    serve.add_argument("--host", help=f"address to listen on (default {DEFAULTS.host})")
    serve.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULTS.port})")
    serve.add_argument(
        "--insecure-http",
        action="store_const",
        const=True,
        help="serve plain HTTP/WS (behind a TLS-terminating proxy, or in tests)",
    )
    serve.add_argument(
        "--api-key",
        help="the app's API key for server-to-server calls (default: generated once, kept in the data dir)",
    )
    serve.add_argument(
        "--demo",
        action="store_const",
        const=True,
        help="seed demo users (alice, bob, carol, mod, admin) and the group 'lobby'",
    )
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log verbosity (default info)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        help=f"messages per second per user; 0 turns it off (default {DEFAULTS.rate_limit:g})",
    )
    serve.add_argument(
        "--allowed-origins",
        help="comma-separated browser origins allowed to open /ws besides the server's own",
    )
    serve.add_argument(
        "--allowed-hosts",
        help="comma-separated Host names to serve (e.g. chat.example.com); others get 400."
        " Default: any (every credential is a token, never a cookie)",
    )
    serve.add_argument(
        "--cert-file",
        type=Path,
        help=f"TLS certificate (default {DEFAULTS.cert_file}; generated if missing)",
    )
    serve.add_argument(
        "--key-file", type=Path, help=f"TLS private key (default {DEFAULTS.key_file})"
    )
    serve.add_argument(
        "--database-url",
        help="postgresql://<user>@<host>:<port>/<db>: keep the data in PostgreSQL (needs the"
        " 'postgres' extra) instead of SQLite in the data dir; keys and secrets stay there",
    )
    serve.add_argument(
        "--redis-url",
        help="redis://<host>:<port>/<n>: several processes with the same --database-url and"
        " --redis-url form one deployment (needs the 'redis' extra); default: in-process hub",
    )
    serve.add_argument(
        "--no-moderation-jobs",
        dest="moderation_jobs",
        action="store_const",
        const=False,
        help="with --redis-url: queue moderation jobs but leave judging them to the other"
        " processes and to 'parley moderation-worker'",
    )
    serve.add_argument(
        "--sqlite-synchronous",
        choices=["NORMAL", "FULL"],
        help="FULL (default): an ack survives power loss; NORMAL: survives a process crash",
    )
    serve.add_argument(
        "--directory-scope",
        choices=["all", "shared_groups"],
        help="whom plain users find in the user directory: everyone, or users they share a"
        f" group with (default {DEFAULTS.directory_scope})",
    )
    serve.add_argument(
        "--push-gateways",
        help="comma-separated URL prefixes of the push gateways (UnifiedPush/ntfy servers, a"
        " signed-webhook relay) users may register offline-push endpoints on; default: none"
        " (offline push off)",
    )
    serve.add_argument(
        "--retention-interval",
        type=float,
        help="seconds between runs of the retention job, which deletes messages past the"
        f" periods set through /api/v1/retention (default {DEFAULTS.retention_interval:g};"
        " 0: only when asked)",
    )
    serve.add_argument(
        "--public-url",
        help="the URL this server is reached at from outside (behind a proxy, the proxy's),"
        " for links given to the Custom API; default: the address it listens on",
    )
    serve.add_argument(
        "--group-reports-show-reporter",
        action="store_const",
        const=True,
        help="let a group's moderators see who reported a message in their group (app staff"
        " always see it)",
    )
    serve.add_argument(
        "--report-escalation-seconds",
        type=int,
        help="seconds an unhandled report waits before it is escalated to app moderators"
        f" (default {DEFAULTS.report_escalation_seconds}; 0: never)",
    )
    serve.add_argument(
        "--upload-ttl",
        type=int,
        help="seconds an upload no message carries is kept before the retention job deletes"
        f" it (default {DEFAULTS.upload_ttl})",
    )
    serve.add_argument(
        "--no-moderation",
        dest="moderation_enabled",
        action="store_const",
        const=False,
        help="turn the moderation pipeline off (every message is unmoderated)",
    )
    serve.add_argument(
        "--openai-base-url",
        help="OpenAI-compatible API base URL, e.g. http://127.0.0.1:11434/v1 (default: OpenAI);"
        " the key comes from PARLEY_OPENAI_API_KEY, OPENAI_API_KEY or <data-dir>/openai.key",
    )
    serve.add_argument("--openai-model", help="model for OpenAI prompt rules (default gpt-4o-mini)")
    serve.add_argument(
        "--openai-moderation-model",
        help="model for the OpenAI moderation endpoint (default omni-moderation-latest)",
    )
    serve.add_argument(
        "--ws-per-message-deflate",
        action="store_const",
        const=True,
        help="enable permessage-deflate (costs about 2x memory per connection)",
    )

    worker = sub.add_parser(
        "moderation-worker",
        help="judge the moderation jobs of a deployment (--database-url and --redis-url, the"
        " same as its servers'), serving no clients",
    )
    _add_common(worker)
    worker.add_argument("--database-url", help="the deployment's PostgreSQL URL")
    worker.add_argument("--redis-url", help="the deployment's Redis URL")
    worker.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])

    migrate = sub.add_parser(
        "migrate-store",
        help="copy the data dir's SQLite database into an empty PostgreSQL database (stop the"
        " server first); keys, secrets and media stay in the data dir",
    )
    _add_common(migrate)
    migrate.add_argument("--database-url", help="the empty PostgreSQL database to fill")

    keys = sub.add_parser("keys", help="manage the data encryption keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser(
        "rotate",
        help="add a new current key; rows sealed with older keys stay readable (restart the server to use it)",
    )
    _add_common(rotate)

    certs = sub.add_parser(
        "certs", help="generate a self-signed development certificate if none exists"
    )
    _add_common(certs)
    certs.add_argument("--cert-file", type=Path)
    certs.add_argument("--key-file", type=Path)

    audit = sub.add_parser("audit", help="check or export the audit log's hash chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    for name, what in (
        ("verify", "exit 0 if the hash chain holds, else 1 naming the first broken record"),
        ("export", "print every audit record as JSON lines"),
    ):
        cmd = audit_sub.add_parser(name, help=what)
        _add_common(cmd)
        cmd.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in the data dir)")

    from server.operators_cli import add_parser as add_operators_parser

    add_operators_parser(sub, _add_common)

    token = sub.add_parser("token", help="print a user token (for trying the API by hand)")
    _add_common(token)
    token.add_argument("uid")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")

    from client.loadtest.command import add_arguments as loadtest_arguments

    loadtest = sub.add_parser(
        "loadtest",
        help="load a running server (users, groups, 1:1, group and media messages, some to"
        " block) and verify exactly-once delivery; a progress bar and a JSON summary",
    )
    loadtest_arguments(loadtest)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    cli: dict[str, Any] = {
        k: v
        for k, v in vars(args).items()
        if k not in ("command", "config", "keys_command", "audit_command", "operators_command")
    }
    return load_settings(cli, os.environ, args.config)


def serve(settings: Settings) -> None:
    import uvicorn

    from server.app import create_app
    from server.http_limits import uvicorn_limits

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ssl: dict[str, Any] = {}
    if not settings.insecure_http:
        if ensure_dev_cert(settings.cert_file, settings.key_file):
            print(f"generated a development certificate: {settings.cert_file}", flush=True)
        ssl = {"ssl_certfile": str(settings.cert_file), "ssl_keyfile": str(settings.key_file)}
    app = create_app(settings)
    state = app.state.parley
    print(
        f"Parley on {settings.base_url}  (chat: {settings.base_url}/  dashboard: {settings.base_url}/dashboard)",
        flush=True,
    )
    # The key itself only for a demo's first start: stdout ends up in log collectors (journald,
    # docker logs, CI output), read by more people and kept longer than the 0600 file.
    stored = settings.data_dir / "secrets.json"
    if settings.api_key:
        where = "API key: given in the settings (--api-key, PARLEY_API_KEY or --config)"
    elif state.api_key_generated and settings.demo:
        where = f"API key (generated now, kept in {stored}): {state.api_key}"
    else:
        made = "generated now, " if state.api_key_generated else ""
        where = f"API key: {made}in {stored} (mode 0600; not shown outside --demo)"
    print(where, flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=settings.ws_per_message_deflate,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        lifespan="on",
        timeout_graceful_shutdown=5,
        **uvicorn_limits(
            head_timeout=settings.http_head_timeout,
            keep_alive_timeout=settings.http_keep_alive_timeout,
            max_connections=settings.max_connections,
        ),
        **ssl,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:  # the lifespan failed (uvicorn has logged why) or the port is taken
        raise SystemExit(1)


def moderation_worker(settings: Settings) -> None:
    """Run the server's lifespan (storage, hub, moderation, webhooks) without serving HTTP:
    this process takes moderation jobs from Redis and delivers verdicts through the hub."""
    import asyncio
    import signal

    from server.app import create_app

    if not (settings.database_url and settings.redis_url):
        print(
            "parley: moderation-worker needs --database-url and --redis-url (those of the"
            " deployment's servers)",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(2)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # A worker takes jobs even if its settings (a shared TOML file) say its servers do not.
    app = create_app(dataclasses.replace(settings, moderation_jobs=True, demo=False), worker=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with app.router.lifespan_context(app):
            print("Parley moderation worker ready", flush=True)
            await stop.wait()

    asyncio.run(run())


def migrate_store(settings: Settings) -> None:
    """``parley migrate-store``: SQLite in the data dir -> the empty database at the URL."""
    import asyncio

    from server.crypto import load_keyring
    from server.storage import postgres
    from server.storage.postgres.migrate_store import MigrationRefused, copy_store, holds_rows
    from server.storage.sqlite import SqliteStorage, key_ids_in_use

    url, db = settings.database_url, settings.db_path
    if not url:
        raise _Refused("migrate-store needs --database-url (the empty PostgreSQL database)")
    if not db.exists():
        raise _Refused(f"no SQLite database at {db} (is --data-dir right?)")
    if postgres.has_data(url) and asyncio.run(holds_rows(url)):
        raise _Refused(
            "the PostgreSQL database already holds Parley data; migrate into an empty database"
            " (createdb) so nothing is mixed or overwritten"
        )
    keyring = load_keyring(settings.data_dir, os.environ, in_use=key_ids_in_use(db), has_data=True)

    async def run() -> dict[str, int]:
        for store in (SqliteStorage(db, keyring), postgres.PostgresStorage(url, keyring)):
            await store.open()  # brings each schema to this version
            await store.close()
        return await copy_store(db, url)

    try:
        copied = asyncio.run(run())
    except MigrationRefused as exc:
        raise _Refused(f"nothing was copied: {exc}") from exc
    for table, count in copied.items():
        print(f"{table:<20} {count:>10,} rows")
    print(
        f"copied {sum(copied.values()):,} rows from {db} into PostgreSQL; start the servers"
        " with --database-url and the same data dir (keys, secrets, media)"
    )


class _Refused(Exception):
    """A command refused to run: the message goes to stderr, the exit status is 2."""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "loadtest":  # a client of some server: none of this one's settings
        from client.loadtest.command import main as loadtest

        return loadtest(args)
    settings = _settings(args)
    try:
        _run(args, settings)
    except (MissingKeys, _Refused) as exc:
        # A refusal the operator must act on, not a crash: the message, no traceback.
        print(f"parley: {exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> None:
    if args.command == "serve":
        serve(settings)
    elif args.command == "moderation-worker":
        moderation_worker(settings)
    elif args.command == "migrate-store":
        migrate_store(settings)
    elif args.command == "keys":
        ring = rotate_keyring(settings.data_dir)
        print(
            f"current key is now {ring.current}; {len(ring.keys)} keys in {settings.data_dir / 'keys.json'}"
        )
    elif args.command == "certs":
        made = ensure_dev_cert(settings.cert_file, settings.key_file)
        print(
            f"{'generated' if made else 'kept existing'} {settings.cert_file} and {settings.key_file}"
        )
    elif args.command == "audit":
        from server.audit_cli import run_export, run_verify

        if settings.database_url:
            from server.storage.postgres.audit_rows import read_audit as read_pg

            rows = read_pg(settings.database_url)
        else:
            from server.storage.sqlite.audit_rows import read_audit

            rows = read_audit(settings.db_path)
        code = (run_verify if args.audit_command == "verify" else run_export)(rows)
        if code:
            raise SystemExit(code)
    elif args.command == "operators":
        import asyncio

        code = asyncio.run(_operators(args, settings))
        if code:
            raise SystemExit(code)
    elif args.command == "token":
        from server.auth import TokenAuthority, load_secrets

        secrets_, _ = load_secrets(
            settings.data_dir,
            api_key=settings.api_key,
            jwt_secret=settings.jwt_secret,
            mint_api_key=False,
        )
        authority = TokenAuthority(
            secrets_, audience=settings.jwt_audience, issuer=settings.jwt_issuer, ttl=args.ttl
        )
        print(authority.issue(args.uid)[0])


async def _operators(args: argparse.Namespace, settings: Settings) -> int:
    """``parley operators ...`` over the server's own storage (opened, migrated, closed)."""
    from server.crypto import load_keyring
    from server.operators_cli import run

    if settings.database_url:
        from server.storage import postgres

        in_use = postgres.key_ids_in_use(settings.database_url)
        has_data = postgres.has_data(settings.database_url)
    else:
        from server.storage.sqlite import SqliteStorage, key_ids_in_use

        db = settings.db_path
        in_use, has_data = key_ids_in_use(db), db.exists() and db.stat().st_size > 0
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    keyring = load_keyring(settings.data_dir, os.environ, in_use=in_use, has_data=has_data)
    store = (
        postgres.PostgresStorage(settings.database_url, keyring)
        if settings.database_url
        else SqliteStorage(settings.db_path, keyring)
    )
    await store.open()
    try:
        return await run(args, store.operators)
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
