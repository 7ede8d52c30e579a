"""create_app(settings) -> Starlette: the routes and the lifespan that builds everything.

This is the only place long-lived objects are built; each gets its dependencies passed in.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from server import protocol
from server.auth import TokenAuthority, load_secrets
from server.chat import ChatService
from server.crypto import load_keyring
from server.demo import seed_demo
from server.errors import ClientError
from server.hub import LocalHub
from server.metrics import Metrics
from server.moderation_service import ModerationService
from server.providers import Providers, load_openai_key
from server.ratelimit import RateLimiter
from server.routes import groups, messages, users
from server.routes import moderation as moderation_routes
from server.routes.common import Deps, caller
from server.security_headers import SecurityHeaders
from server.session import Session
from server.settings import Settings
from server.storage.sqlite import SqliteStorage, key_ids_in_use
from server.webhooks import WebhookSender

#: Young-generation size and how rarely the older ones are collected (CPython: 700, 10, 10).
#: The middle generation every 2 young passes: each of its passes then scans only the few
#: minutes' survivors (~100 ms with 5,000 connections) instead of 0.5 s every 20 passes.
GC_THRESHOLDS = (50_000, 2, 1000)

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan built, for the handlers and for tests."""

    chat: ChatService
    store: SqliteStorage
    api_key: str
    api_key_generated: bool


def _web_dir() -> str:
    return str(resources.files("client.web"))


def create_app(settings: Settings, *, env: Mapping[str, str] | None = None) -> Starlette:
    """Build the ASGI app; storage opens and the pipeline starts in the lifespan."""
    env = dict(os.environ if env is None else env)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Checked here, before anything is served: MissingKeys when the keyring lacks a key that
    # sealed rows name, or would be minted over existing data (`parley serve` prints why and
    # exits 2; raised in the lifespan it would only become a logged traceback).
    db = settings.db_path
    keyring = load_keyring(
        settings.data_dir,
        env,
        in_use=key_ids_in_use(db),
        has_data=db.exists() and db.stat().st_size > 0,
    )
    secrets_, generated = load_secrets(
        settings.data_dir,
        api_key=settings.api_key,
        jwt_secret=settings.jwt_secret or env.get("PARLEY_JWT_SECRET"),
    )
    metrics = Metrics()
    store = SqliteStorage(
        settings.db_path,
        keyring,
        synchronous=settings.sqlite_synchronous,
        batch_max=settings.write_batch_max,
    )
    hub = LocalHub()
    tokens = TokenAuthority(
        secrets_, audience=settings.jwt_audience, issuer=settings.jwt_issuer, ttl=settings.token_ttl
    )
    mstore = store.moderation
    webhooks = WebhookSender(store.deliveries, metrics)
    moderation = ModerationService(
        store.messages,
        mstore,
        metrics,
        audit=store.audit,
        workers=settings.moderation_workers,
        queue_size=settings.moderation_queue_size,
        context_window=settings.context_window,
        enabled=settings.moderation_enabled,
        webhooks=webhooks,
    )
    moderation.providers = Providers(
        report=moderation.report_provider_call,
        resolve=moderation.message_json,
        openai_key=load_openai_key(settings.data_dir, env),
        openai_base_url=settings.openai_base_url,
        openai_model=settings.openai_model,
        openai_moderation_model=settings.openai_moderation_model,
        context_window=settings.context_window,
    )
    mstore.on_report = lambda report: webhooks.emit("message.reported", {"report": report})
    chat = ChatService(
        store.chat,
        hub,
        tokens,
        gate=moderation,
        limits=protocol.Limits(
            max_text_chars=settings.max_text_chars, max_json_bytes=settings.max_json_bytes
        ),
        rate_limiter=RateLimiter(
            settings.rate_limit, settings.rate_burst or max(1, round(settings.rate_limit))
        ),
        reports=mstore,
    )
    moderation.bind(chat)
    chat.on_event = moderation.emit  # user.banned (group and server bans) to the webhooks
    state = AppState(chat=chat, store=store, api_key=secrets_.api_key, api_key_generated=generated)
    deps = Deps(chat=chat, settings=settings, metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        if settings.demo:
            await seed_demo(chat, store.chat)
        await moderation.start()  # configures the webhooks before their sender starts
        await webhooks.start()
        # What exists now (modules, rules, compiled lists) lives as long as the process: keep
        # it out of the garbage collector's full passes. And make full passes rare: a chat
        # server holds hundreds of thousands of long-lived objects (connections, caches), a
        # full pass over them stalls every conversation for 100-300 ms and frees nothing
        # (measured), while the short-lived cycles die in the young generations.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        unwatch_gc = metrics.watch_gc()
        log.info("Parley ready on %s", settings.base_url)
        try:
            yield
        finally:
            unwatch_gc()
            await moderation.stop()
            await webhooks.stop()
            await store.close()

    async def ws_endpoint(ws: WebSocket) -> None:
        await Session(ws, chat, settings, metrics).run()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "connections": hub.count})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def audit(request: Request) -> Response:
        who = await caller(request, chat)
        if not who.principal.is_admin:
            from server.errors import Forbidden

            raise Forbidden("the audit log is for admins and the API key")
        from server.jsoncodec import INT_MAX
        from server.routes.common import query_int

        since = query_int(request, "since", default=0, lo=0, hi=INT_MAX)
        assert since is not None
        return JSONResponse({"entries": [e.to_json() for e in await chat.audit(since)]})

    web = _web_dir()

    async def index(request: Request) -> Response:
        return FileResponse(os.path.join(web, "index.html"))

    async def dashboard(request: Request) -> Response:
        return FileResponse(os.path.join(web, "dashboard.html"))

    async def client_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ClientError)
        metrics.errors.labels(exc.code).inc()
        return JSONResponse(exc.to_json(), status_code=exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "ERR_NOT_FOUND", 401: "ERR_AUTH_REQUIRED"}.get(
            exc.status_code, "ERR_BAD_REQUEST"
        )
        return JSONResponse(
            {"code": code, "message": str(exc.detail), "details": {}},
            status_code=exc.status_code,
            headers=exc.headers,  # a 405 names the allowed methods (Allow)
        )

    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            {"code": "ERR_INTERNAL", "message": "internal error", "details": {}}, status_code=500
        )

    api: list[Any] = [
        *users.routes(deps),
        *groups.routes(deps),
        *messages.routes(deps),
        *moderation_routes.routes(deps, moderation),
    ]
    api.append(Route("/audit", audit, methods=["GET"]))
    routes = [
        WebSocketRoute("/ws", ws_endpoint),
        Mount("/api/v1", routes=api),
        Route("/healthz", healthz),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
        Route("/metrics", metrics_endpoint),
        Route("/", index),
        Route("/dashboard", dashboard),
        Mount("/static", app=StaticFiles(directory=web), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders),
            *(
                [Middleware(TrustedHostMiddleware, allowed_hosts=list(settings.allowed_hosts))]
                if settings.allowed_hosts
                else []
            ),
        ],
        exception_handlers={
            ClientError: client_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
    )
    app.state.parley = state
    return app
