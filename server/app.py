"""create_app(settings) -> Starlette: the routes and the lifespan that builds everything.

This is the only place long-lived objects are built; each gets its dependencies passed in.
Over 400 lines on purpose: one function builds every service, store and background task in
the order they depend on each other, and that order is easiest to check in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from moderation.local_detectors import build_detectors
from moderation.types import Verdict
from server import __version__, openapi, protocol
from server.auth import TokenAuthority, load_secrets
from server.clock import SYSTEM_CLOCK
from server.crypto import load_keyring
from server.demo import seed_demo, seed_demo_operators
from server.errors import ClientError
from server.event_webhooks import EventWebhooks
from server.external_detectors import ExternalDetectors, ProviderCallReport, load_openai_key
from server.hub import Hub, LocalHub
from server.media.quarantine import MediaQuarantine
from server.media.service import build_media_service
from server.metrics import Metrics
from server.models import Message
from server.moderation_service.admin import ModerationAdmin
from server.moderation_service.gate import ModerationService
from server.moderation_service.outcomes import Outcomes
from server.moderation_service.review import ReviewDesk
from server.moderation_service.tryout import Tryout
from server.moderation_service.views import InflightMessages, MessageViews
from server.oidc import OidcClient, OidcConfig
from server.operator_auth import LoginPolicy
from server.push import PushService
from server.ratelimit import RateLimiter
from server.routes import audit as audit_routes
from server.routes import decisions as decision_routes
from server.routes import groups, known_images, messages, review_card, users
from server.routes import inbox as inbox_routes
from server.routes import live as live_routes
from server.routes import media as media_routes
from server.routes import moderation as moderation_routes
from server.routes import operators as operator_routes
from server.routes import push as push_routes
from server.routes import reactions as reaction_routes
from server.routes import retention as retention_routes
from server.routes.common import Deps
from server.routes.moderation import ModerationDeps
from server.security_headers import RefuseNul, SecurityHeaders
from server.services.accounts import AccountService
from server.services.appeals import Appeals, ReviewHooks
from server.services.audit import AuditLog
from server.services.blocks import BlockService
from server.services.decisions import DEFAULT_APPEAL_WINDOW, Decisions
from server.services.escalation import EscalationLadders
from server.services.fanout import Fanout
from server.services.groups import GroupService
from server.services.inbox import DirectoryService, InboxService
from server.services.live_counters import LiveCounters
from server.services.media_messages import MediaVisibility
from server.services.messaging import MessagingService
from server.services.operators import OperatorService
from server.services.probation import Probation
from server.services.reactions import ParentCheck, Reactions
from server.services.reports import ReportOptions
from server.services.restrictions import Restrictions
from server.services.retention import RetentionService
from server.services.sender_view import SenderView
from server.services.staff_feed import FanOutSink, StaffFeed
from server.services.users import UserService
from server.services.verdicts import VerdictService
from server.session import Session
from server.settings import Settings
from server.shared_state import NO_SHARING, Invalidator
from server.staff_sessions import StaffSessions
from server.storage.sqlite import SqliteStorage, key_ids_in_use

if TYPE_CHECKING:  # imported only with --database-url, --redis-url: asyncpg, redis are extras
    from server.redis_hub import RedisHub
    from server.redis_jobs import RedisJobs
    from server.storage import postgres

#: Young-generation size and how rarely the older ones are collected (CPython: 700, 10, 10).
#: The middle generation every 2 young passes: each of its passes then scans only the few
#: minutes' survivors (~100 ms with 5,000 connections) instead of 0.5 s every 20 passes.
GC_THRESHOLDS = (50_000, 2, 1000)

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the lifespan built, for the handlers and for tests."""

    users: UserService
    groups: GroupService
    messaging: MessagingService
    moderation: ModerationService
    store: SqliteStorage | postgres.PostgresStorage
    api_key: str
    api_key_generated: bool


def _web_dir() -> str:
    return str(resources.files("client.web"))


def create_app(
    settings: Settings, *, env: Mapping[str, str] | None = None, worker: bool = False
) -> Starlette:
    """Build the ASGI app; storage opens and the pipeline starts in the lifespan.

    ``worker``: for ``parley moderation-worker``, which only runs the lifespan (it serves no
    API, so it never mints an API key into the data dir)."""
    env = dict(os.environ if env is None else env)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Checked here, before anything is served: MissingKeys when the keyring lacks a key that
    # sealed rows name, or would be minted over existing data (`parley serve` prints why and
    # exits 2; raised in the lifespan it would only become a logged traceback).
    if settings.database_url:  # PostgreSQL (the ``postgres`` extra); else SQLite in data_dir
        from server.storage import postgres

        in_use, has_data = (
            postgres.key_ids_in_use(settings.database_url),
            postgres.has_data(settings.database_url),
        )
    else:
        db = settings.db_path
        in_use, has_data = key_ids_in_use(db), db.exists() and db.stat().st_size > 0
    keyring = load_keyring(settings.data_dir, env, in_use=in_use, has_data=has_data)
    secrets_, generated = load_secrets(
        settings.data_dir,
        api_key=settings.api_key,
        jwt_secret=settings.jwt_secret or env.get("PARLEY_JWT_SECRET"),
        mint_api_key=not worker,
    )
    metrics = Metrics()
    store: SqliteStorage | postgres.PostgresStorage = (
        postgres.PostgresStorage(settings.database_url, keyring, batch_max=settings.write_batch_max)
        if settings.database_url
        else SqliteStorage(
            settings.db_path,
            keyring,
            synchronous=settings.sqlite_synchronous,
            batch_max=settings.write_batch_max,
        )
    )
    # --redis-url: the hub and the cache invalidation span the processes of a deployment
    # (server/redis_hub.py, the ``redis`` extra); else the in-process hub, nothing to share.
    redis_hub: RedisHub | None = None
    redis_jobs: RedisJobs | None = None  # moderation jobs for any process (a stream group)
    if settings.redis_url:
        from server.redis_hub import RedisHub
        from server.redis_jobs import RedisJobs

        redis_hub = RedisHub(settings.redis_url)
        redis_jobs = RedisJobs(
            settings.redis_url,
            take=settings.moderation_jobs,
            claim_idle=settings.moderation_claim_idle,
            limit=2 * settings.moderation_workers,
            consumer=redis_hub.node,
        )
    hub: Hub = redis_hub if redis_hub is not None else LocalHub()
    shared: Invalidator = redis_hub if redis_hub is not None else NO_SHARING
    tokens = TokenAuthority(
        secrets_, audience=settings.jwt_audience, issuer=settings.jwt_issuer, ttl=settings.token_ttl
    )
    clock = SYSTEM_CLOCK
    limits = protocol.Limits(
        max_text_chars=settings.max_text_chars, max_json_bytes=settings.max_json_bytes
    )
    # Built in dependency order, each complete when its constructor returns: the outgoing
    # event webhooks (the EventSink), then users -> blocks, groups -> media -> fanout ->
    # verdicts -> the moderation side (through server.services.contracts only) -> messaging
    # (which takes the gate). Nothing is wired after construction.
    webhooks = EventWebhooks(store.deliveries, metrics, clock=clock)
    # The dashboards' live feed (issue 17) hears the queue events the webhooks get.
    feed = StaffFeed(clock=clock)
    queue_events = FanOutSink(webhooks, feed)
    users_ = UserService(store.chat, hub, tokens, events=webhooks, clock=clock, shared=shared)
    blocks = BlockService(store.chat, users_, clock=clock, shared=shared)
    # Statements of reasons (issue 15); the appeal window in seconds from the environment.
    decisions = Decisions(
        store.sanctions,
        store.moderation,
        hub,
        clock=clock,
        appeal_window=int(env.get("PARLEY_APPEAL_WINDOW_SECONDS") or DEFAULT_APPEAL_WINDOW),
    )
    groups_ = GroupService(
        store.chat, users_, hub, events=webhooks, clock=clock, measures=decisions, shared=shared
    )
    restrictions = Restrictions(
        store.sanctions,
        decisions,
        users_,
        groups_,
        clock=clock,
        shared=shared,
        spacing=redis_hub.spacing() if redis_hub is not None else None,
    )
    # Media links need to know who may see a message; messaging, verdicts and moderation
    # then take the media service through their contracts.
    media = build_media_service(
        settings,
        store.media,
        store.chat,
        keyring,
        secrets_.jwt_secret,
        message_visible=MediaVisibility(store.messages, groups_),
    )
    accounts = AccountService(
        store.chat,
        store.messages,
        users_,
        blocks,
        groups_,
        clock=clock,
        media=media,
        reactions=store.reactions,
    )
    # Offline push (issue 16 item 7): told of each delivery by the fan-out, never waited for.
    push = PushService(
        store.push,
        hub,
        metrics,
        gateways=settings.push_gateways,
        signing_key=secrets_.jwt_secret,
        clock=clock,
        attempts=settings.push_attempts,
        retry_delay=settings.push_retry_delay,
        timeout=settings.push_timeout,
    )
    fanout = Fanout(
        hub,
        groups_,
        blocks,
        users=users_,
        media=media,
        hidden=restrictions.hidden,
        delivered=push.notify,
    )
    # Known-bad images: a disapproving image_hash match quarantines the upload (issue 12);
    # a person approving the message after all lifts it.
    quarantine = MediaQuarantine(media, store.audit, webhooks, clock=clock)
    verdicts = VerdictService(
        store.messages,
        store.audit,
        hub,
        fanout,
        groups_,
        blocks,
        clock=clock,
        decisions=decisions,
        overturned=quarantine.after_approval,
    )
    appeals = Appeals(
        store.sanctions,
        decisions,
        restrictions,
        store.messages,
        verdicts,
        groups_,
        hub,
        clock=clock,
    )
    views = MessageViews(store.messages, users_, groups_, media)

    async def provider_attachment(message: Message) -> dict[str, Any] | None:
        """A media message's attachment for the Custom API: absolute links signed for its
        sender (who may always see their own upload), so the provider can fetch the file
        while the message is still pending; they expire like any link."""
        media_id = (message.attachment or {}).get("mediaId")
        sender = await users_.user(message.sender)
        if not isinstance(media_id, str) or sender is None:
            return None
        found = await media.attachment(media_id, sender)
        if found is None:
            return None
        base = settings.public_base
        for key in ("url", "thumbnailUrl"):
            if key in found:
                found[key] = base + found[key]
        return found

    inflight = InflightMessages(store.messages, attach=provider_attachment)
    # New-account probation (issue 15): review mode in the moderation side, links and media
    # refused in messaging.
    probation = Probation(store.sanctions, store.messages, users_.user, clock=clock)
    # After a rule's disapproval: the quarantine of a known-bad image, then the rule's
    # escalation ladder (issue 15), each never raising.
    ladders = EscalationLadders(
        store.sanctions, store.audit, decisions, restrictions, groups_, clock=clock
    )

    async def after_disapproval(message: Message, verdict: Verdict) -> None:
        await quarantine.after_verdict(message, verdict)
        await ladders.after_disapproval(message, verdict)

    moderation = ModerationService(
        store.messages,
        store.moderation,
        metrics,
        views=views,
        inflight=inflight,
        outcomes=Outcomes(
            verdicts,
            store.moderation,
            metrics,
            events=queue_events,
            clock=clock,
            disapproved=after_disapproval,
            probation=probation,
        ),
        detectors=build_detectors(),
        clock=clock,
        workers=settings.moderation_workers,
        queue_size=settings.moderation_queue_size,
        context_window=settings.context_window,
        enabled=settings.moderation_enabled,
        external=ExternalDetectors(
            report=ProviderCallReport(metrics, webhooks),
            resolve=inflight.message_json,
            openai_key=load_openai_key(settings.data_dir, env),
            openai_base_url=settings.openai_base_url,
            openai_model=settings.openai_model,
            openai_moderation_model=settings.openai_moderation_model,
            context_window=settings.context_window,
        ),
        webhooks=webhooks,
        shared=shared,
        probation=probation,
        jobs=redis_jobs,
    )
    moderation_deps = ModerationDeps(
        admin=ModerationAdmin(store.moderation, moderation, clock=clock),
        review=ReviewDesk(
            store.messages,
            store.moderation,
            verdicts,
            events=webhooks,
            clock=clock,
            hooks=ReviewHooks(appeals, decisions, store.moderation, hub),
        ),
        tryout=Tryout(moderation, views, store.messages, clock=clock),
        webhooks=webhooks,
        feed=feed,
    )
    counters = LiveCounters(metrics, feed, moderation_deps.review.open_counts, clock=clock)
    rate_burst = settings.rate_burst or max(1, round(settings.rate_limit))
    # With --redis-url one bucket per user in Redis, whichever process the user is on.
    rate_limiter = (
        redis_hub.rate_limiter(settings.rate_limit, rate_burst)
        if redis_hub is not None
        else RateLimiter(settings.rate_limit, rate_burst, clock=clock.monotonic)
    )
    messaging = MessagingService(
        store.messages,
        store.moderation,
        hub,
        users_,
        blocks,
        groups_,
        fanout,
        gate=moderation,
        events=queue_events,
        rate_limiter=rate_limiter,
        clock=clock,
        media=media,
        restrictions=restrictions,
        typing=redis_hub.typing_throttle() if redis_hub is not None else None,
        report_options=ReportOptions(
            show_reporter=settings.group_reports_show_reporter,
            escalate_after=settings.report_escalation_seconds,
        ),
        parent_check=ParentCheck(store.messages, restrictions).check,
        probation=probation,
    )
    reactions = Reactions(
        store.reactions,
        messaging,
        fanout,
        hub,
        blocks,
        rate_limiter=rate_limiter,
        clock=clock,
        restrictions=restrictions,
    )
    inbox = InboxService(store.inbox, render=messaging.render, hidden=restrictions.hidden)
    # Retention (issue 15): periods, holds, and the job that deletes what is past them,
    # with the in-memory copies of messages it must empty.
    retention = RetentionService(
        store.retention,
        store.audit,
        groups_,
        media.remove_files,
        clock=clock,
        forget=(views.forget,),
        interval=settings.retention_interval,
        upload_ttl=settings.upload_ttl,
    )
    directory = DirectoryService(store.inbox, scope=settings.directory_scope)
    state = AppState(
        users=users_,
        groups=groups_,
        messaging=messaging,
        moderation=moderation,
        store=store,
        api_key=secrets_.api_key,
        api_key_generated=generated,
    )
    # Operator accounts and dashboard sessions (issue 17); the CSRF tokens are keyed by the
    # JWT secret (so they hold across processes and restarts).
    operators = OperatorService(
        store.operators,
        clock=clock,
        csrf_secret=secrets_.jwt_secret,
        policy=LoginPolicy(
            delay=settings.operator_login_delay, lock_after=settings.operator_lock_after
        ),
        session_ttl=settings.operator_session_ttl,
        demo=settings.demo,
    )
    # OpenID Connect sign-in for operators, when an issuer and a client are configured.
    oidc = (
        OidcClient(
            OidcConfig(
                issuer=settings.oidc_issuer,
                client_id=settings.oidc_client_id,
                client_secret=settings.oidc_client_secret or "",
                name_claim=settings.oidc_name_claim,
            ),
            flow_secret=secrets_.jwt_secret,
        )
        if settings.oidc_issuer and settings.oidc_client_id
        else None
    )
    deps = Deps(
        users=users_,
        accounts=accounts,
        blocks=blocks,
        groups=groups_,
        messaging=messaging,
        audit=AuditLog(store.audit),
        settings=settings,
        limits=limits,
        metrics=metrics,
        reactions=reactions,
        operators=operators,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        await restrictions.load()
        if redis_hub is not None:
            await redis_hub.start(
                {
                    "user": users_.invalidate,
                    "blocks": blocks.invalidate,
                    "members": groups_.invalidate,
                    "restrictions": restrictions.invalidate,
                    "moderation": moderation.invalidate,
                }
            )
        if settings.demo:
            await seed_demo(users_, groups_)
            await seed_demo_operators(operators)
        await moderation.start()  # configures the webhooks before their sender starts
        if redis_jobs is not None:
            await redis_jobs.start(moderation.take, moderation.requeue, moderation.give_up)
        await webhooks.start()
        await push.start()
        retention.start()
        messaging.reports.start()
        # What exists now (modules, rules, compiled lists) lives as long as the process: keep
        # it out of the garbage collector's full passes. And make full passes rare: a chat
        # server holds hundreds of thousands of long-lived objects (connections, caches), a
        # full pass over them stalls every conversation for 100-300 ms and frees nothing
        # (measured), while the short-lived cycles die in the young generations.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        unwatch_gc = metrics.watch_gc()
        counting = asyncio.create_task(counters.run(), name="dashboard-counters")
        log.info("Parley ready on %s", settings.base_url)
        try:
            yield
        finally:
            counting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await counting
            unwatch_gc()
            await retention.stop()
            await messaging.reports.stop()
            if redis_jobs is not None:
                await redis_jobs.stop_taking()
            await moderation.stop()
            if redis_jobs is not None:
                await redis_jobs.stop()  # jobs not finished are left to the other processes
            await webhooks.stop()
            await push.stop()
            if redis_hub is not None:
                await redis_hub.stop()
            await store.close()

    async def ws_endpoint(ws: WebSocket) -> None:
        await Session(
            ws,
            hub=hub,
            users=users_,
            messaging=messaging,
            settings=settings,
            limits=limits,
            metrics=metrics,
            reactions=reactions,
        ).run()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "connections": hub.count})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

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

    openapi_body = json.dumps(openapi.document(__version__)).encode()

    async def openapi_json(request: Request) -> Response:
        return Response(openapi_body, media_type="application/json")

    api: list[Any] = [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *users.routes(deps),
        *groups.routes(deps),
        *messages.routes(deps, sender_view=SenderView(store.messages, restrictions, decisions)),
        *moderation_routes.routes(deps, moderation_deps),
        *audit_routes.routes(deps),
        *decision_routes.routes(
            deps,
            decision_routes.DecisionDeps(decisions, appeals, restrictions, ladders, probation),
        ),
        *media_routes.api_routes(deps, media),
        *known_images.routes(deps, moderation_deps.admin, media, quarantine),
        *inbox_routes.routes(deps, inbox=inbox, directory=directory),
        *reaction_routes.routes(deps, reactions),
        *push_routes.routes(deps, push),
        *retention_routes.routes(deps, retention),
        *operator_routes.routes(deps, oidc),
        *review_card.routes(
            deps,
            review_card.CardDeps(
                appeals, moderation_deps.review, moderation_deps.admin, moderation_deps.tryout
            ),
        ),
    ]
    routes = [
        WebSocketRoute("/ws", ws_endpoint),
        live_routes.route(feed, operators),
        Mount("/api/v1", routes=api),
        *media_routes.download_routes(media),
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
            Middleware(RefuseNul),
            Middleware(StaffSessions, operators=operators),
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
