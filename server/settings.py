"""Frozen server settings, merged from defaults, a TOML file, ``PARLEY_*`` env and CLI flags.

Precedence, lowest to highest: defaults < TOML file < environment < command line.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    """Everything the server reads at start; nothing here changes while it runs."""

    host: str = "127.0.0.1"
    port: int = 8443
    data_dir: Path = Path("data")
    insecure_http: bool = False
    cert_file: Path = Path("certs/dev.crt")
    key_file: Path = Path("certs/dev.key")
    api_key: str | None = field(default=None, repr=False)
    demo: bool = False
    log_level: str = "info"
    # Messages per second per user; 0 turns the limit off. Bursts up to ``rate_burst``
    # (0: one second's worth, so ``--rate-limit N`` admits at most about N in any second).
    rate_limit: float = 20.0
    rate_burst: int = 0
    allowed_origins: tuple[str, ...] = ()
    # Host headers to serve (``*.example.com`` wildcards); empty serves any. Set it to stop
    # DNS rebinding: a page on another name that resolves to this server.
    allowed_hosts: tuple[str, ...] = ()
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_audience: str = "parley"
    jwt_issuer: str = "parley"
    token_ttl: int = 24 * 3600
    max_frame_bytes: int = 64 * 1024
    max_text_chars: int = 16_000
    max_json_bytes: int = 32 * 1024
    max_body_bytes: int = 256 * 1024
    # Uploads (POST /api/v1/media): the largest file per kind, refused with 413 as soon as
    # the limit is passed; images over ``max_image_pixels`` (all frames) are refused unread.
    max_image_bytes: int = 20 * 1024 * 1024
    max_audio_bytes: int = 20 * 1024 * 1024
    max_file_bytes: int = 50 * 1024 * 1024
    max_video_bytes: int = 200 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    # Lifetime of a signed media link (seconds).
    media_token_ttl: int = 900
    # Video moderation: the poster, then one frame every ``video_frame_interval`` seconds, at
    # most ``video_max_frames`` frames, go through the image detectors (also the most frames
    # of an animated image).
    video_frame_interval: float = 5.0
    video_max_frames: int = 12
    auth_timeout: float = 10.0
    # A connection must send each request head within this many seconds (slowloris); idle
    # keep-alive connections close after ``http_keep_alive_timeout``; past
    # ``max_connections`` connections (WebSockets included) new requests get 503. Keep it
    # under the process's file-descriptor limit (``ulimit -n``).
    http_head_timeout: float = 10.0
    http_keep_alive_timeout: int = 5
    max_connections: int = 16_000
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    ws_per_message_deflate: bool = False
    send_queue_size: int = 1024
    # postgresql://<user>@<host>:<port>/<db>: store everything in PostgreSQL (several processes
    # may share it); empty: SQLite in ``data_dir``. Hidden from repr: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    # redis://<host>:<port>/<n>: fan-out, presence, typing and cache invalidation across the
    # processes of one deployment (the ``redis`` extra); empty: the in-process hub.
    redis_url: str | None = field(default=None, repr=False)
    # PRAGMA synchronous for the message store: FULL makes an ack survive power loss too.
    sqlite_synchronous: str = "FULL"
    write_batch_max: int = 512
    moderation_workers: int = 64
    moderation_queue_size: int = 10_000
    moderation_enabled: bool = True
    # With --redis-url: whether this process takes moderation jobs from the deployment's
    # shared queue (else it only queues them, for other processes and moderation workers);
    # and how many seconds a job may sit untouched in a dead process's hands before another
    # process takes it over (a live one touches its jobs every third of that).
    moderation_jobs: bool = True
    moderation_claim_idle: float = 15.0
    context_window: int = 5
    # OpenAI-compatible endpoint and models (the moderation settings may override them); the
    # API key is not a setting: PARLEY_OPENAI_API_KEY, OPENAI_API_KEY or <data-dir>/openai.key.
    openai_base_url: str | None = None
    openai_model: str | None = None
    openai_moderation_model: str | None = None
    # Whom plain users find in the user directory (GET /api/v1/users?search=): "all", or
    # "shared_groups" (users they share a group with). Staff and the API key see everyone.
    directory_scope: str = "shared_groups"
    # Seconds between runs of the retention job (PUT /api/v1/retention sets the periods;
    # until then it deletes nothing); 0: only on POST /api/v1/retention/run.
    retention_interval: float = 3600.0
    # Reports (issue 15): whether a group's moderators see who reported a message in their
    # group (app staff always do), and after how many seconds an unhandled report is
    # escalated to app moderators (0: never).
    group_reports_show_reporter: bool = False
    report_escalation_seconds: int = 3600
    # The URL this server is reached at from outside (behind a proxy: the proxy's), for links
    # given to peers such as the Custom API; default: scheme://host:port it listens on.
    public_url: str | None = None
    # Seconds an upload that no message carries is kept (the retention job deletes it then).
    upload_ttl: int = 86_400
    # Offline push (issue 16 item 7): URL prefixes of the push gateways users may register
    # endpoints on (UnifiedPush/ntfy servers, the app's own push relay); empty turns push off.
    # A failed push is retried ``push_attempts`` times in all, waiting ``push_retry_delay``
    # seconds, then twice as long each time; each request waits at most ``push_timeout``.
    push_gateways: tuple[str, ...] = ()
    push_attempts: int = 6
    push_retry_delay: float = 1.0
    push_timeout: float = 5.0
    # Operator (dashboard) sign-in, issue 17: session lifetime; after 3 failed sign-ins in a
    # row each next attempt waits ``operator_login_delay`` seconds, doubling; at
    # ``operator_lock_after`` failures the account locks until an admin unlocks it.
    operator_session_ttl: int = 12 * 3600
    operator_login_delay: float = 2.0
    operator_lock_after: int = 10
    # OpenID Connect sign-in for operators (off unless the issuer and client are set): the
    # issuer URL, the client id and secret registered there, the ID token claim naming the
    # operator, and the callback URL registered (default: this server's own URL as the
    # request reached it + /api/v1/operators/oidc/callback).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    oidc_name_claim: str = "preferred_username"
    oidc_redirect_url: str | None = None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "parley.db"

    @property
    def scheme(self) -> str:
        return "http" if self.insecure_http else "https"

    @property
    def public_base(self) -> str:
        """Where peers reach this server: ``public_url`` (without a trailing slash), or the
        address it listens on."""
        return (self.public_url or self.base_url).rstrip("/")

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


_FIELDS = {f.name: f for f in fields(Settings)}
_TRUE = {"1", "true", "yes", "on"}


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings, name, None)
    if name in ("data_dir", "cert_file", "key_file"):
        return Path(value)
    if name in ("allowed_origins", "allowed_hosts", "push_gateways"):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(value)
    if name in (
        "api_key",
        "jwt_secret",
        "database_url",
        "redis_url",
        "openai_base_url",
        "openai_model",
        "openai_moderation_model",
        "public_url",
        "oidc_issuer",
        "oidc_client_id",
        "oidc_client_secret",
        "oidc_redirect_url",
    ):
        return None if value in (None, "") else str(value)
    if isinstance(default, bool):
        return value.strip().lower() in _TRUE if isinstance(value, str) else bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Build Settings from the layers; unknown keys in the TOML file raise ``ValueError``."""
    values: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as fh:
            raw = tomllib.load(fh)
        section = raw.get("parley", raw)
        for key, value in section.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ValueError(f"unknown setting {key!r} in {config_file}")
            values[name] = _coerce(name, value)
    for key, value in (env or {}).items():
        if not key.startswith("PARLEY_"):
            continue
        name = key[len("PARLEY_") :].lower()
        if name in _FIELDS:
            values[name] = _coerce(name, value)
    for name, value in (cli or {}).items():
        if value is not None and name in _FIELDS:
            values[name] = _coerce(name, value)
    settings = Settings(**values)
    if settings.directory_scope not in ("all", "shared_groups"):
        raise ValueError("directory_scope must be all or shared_groups")
    if settings.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError("sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA")
    return dataclasses.replace(settings, sqlite_synchronous=settings.sqlite_synchronous.upper())
