"""What every REST handler needs: the caller, a size-limited JSON body, typed fields, errors."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from server.auth import API_KEY_PRINCIPAL, Principal, Role, StaffRole, bearer_token
from server.errors import (
    AuthInvalid,
    AuthRequired,
    BadRequest,
    ClientError,
    Forbidden,
    TooLarge,
    UnsupportedMedia,
)
from server.jsoncodec import INT_MAX
from server.metrics import Metrics
from server.models import User
from server.protocol import Limits, is_ident, parse_json
from server.services.accounts import AccountService
from server.services.audit import AuditLog, actor_label
from server.services.blocks import BlockService
from server.services.groups import GroupService
from server.services.messaging import MessagingService
from server.services.operators import OperatorService, StaffSession
from server.services.reactions import Reactions
from server.services.users import UserService
from server.settings import Settings

log = logging.getLogger(__name__)

# ASCII digits only: str.isdigit() and int() also take "²", "٣", " 7", "+7" and "7_0".
_INT_RE = re.compile(r"\A-?[0-9]+\Z")


@dataclass(frozen=True)
class Deps:
    """What the handlers are built with (passed in by ``create_app``)."""

    users: UserService
    accounts: AccountService
    blocks: BlockService
    groups: GroupService
    messaging: MessagingService
    audit: AuditLog
    settings: Settings
    limits: Limits
    metrics: Metrics
    operators: OperatorService
    #: Counts of reactions and replies on the message objects of history (issue 16 item 8).
    reactions: Reactions | None = None


@dataclass(frozen=True)
class Caller:
    principal: Principal
    user: User | None

    @property
    def actor(self) -> str:
        """The caller as moderation records name it."""
        return actor_label(self.principal)


async def caller(request: Request, users: UserService) -> Caller:
    """The API key holder or the user of the bearer token; raises 401 otherwise."""
    key = request.headers.get("x-api-key")
    if key is not None:
        if not users.check_api_key(key):
            raise AuthInvalid("invalid API key")
        return Caller(API_KEY_PRINCIPAL, None)
    token = bearer_token(request.headers)
    if token is None:
        raise AuthRequired("send X-API-Key or Authorization: Bearer <token>")
    user = await users.authenticate(token)
    return Caller(Principal(uid=user.uid, role=Role(user.role)), user)


async def require_api_key(request: Request, users: UserService) -> Caller:
    who = await caller(request, users)
    if not who.principal.is_api_key:
        raise Forbidden("this call needs the API key")
    return who


async def require_user(request: Request, users: UserService) -> tuple[Caller, User]:
    who = await caller(request, users)
    if who.user is None:
        raise Forbidden("this call needs a user token")
    return who, who.user


#: Where ``server/staff_sessions.py`` leaves the dashboard session of a request.
STAFF_SCOPE_KEY = "parley.staff"


def staff_session(request: HTTPConnection) -> StaffSession | None:
    """The request's operator session (the dashboard's cookie), None without one; raises
    the reason a cookie does not count (expired, CSRF token missing, another origin)."""
    found = request.scope.get(STAFF_SCOPE_KEY)
    if isinstance(found, ClientError):
        raise found
    return found if isinstance(found, StaffSession) else None


async def staff_caller(request: Request, users: UserService) -> Caller:
    """The API key holder, the user of a bearer token, or the signed-in operator."""
    if "x-api-key" in request.headers or bearer_token(request.headers) is not None:
        return await caller(request, users)
    session = staff_session(request)
    if session is None:
        raise AuthRequired("sign in to the dashboard, or send X-API-Key or a bearer token")
    return Caller(session.principal, None)


def _allowed(principal: Principal, need: StaffRole, *, chat_admin: bool) -> bool:
    """An operator needs role ``need`` or above (viewer < moderator < admin); the API key and
    server users keep the contract's rule: staff (moderators and admins), or admins only
    with ``chat_admin``."""
    if principal.staff is not None:
        return principal.staff >= need
    return principal.is_admin if chat_admin else principal.is_staff


async def require_staff(
    request: Request,
    users: UserService,
    need: StaffRole = StaffRole.MODERATOR,
    *,
    chat_admin: bool = False,
) -> Caller:
    """The API key, a server moderator or admin (only admins with ``chat_admin``), or an
    operator whose role is ``need`` or above; 403 otherwise."""
    who = await staff_caller(request, users)
    if not _allowed(who.principal, need, chat_admin=chat_admin):
        if who.principal.staff is not None:
            raise Forbidden(f"this needs the {need.label} role or above", {"role": need.label})
        raise Forbidden(
            "admins or the API key only" if chat_admin else "moderators, admins or the API key only"
        )
    return who


async def require_admin(request: Request, users: UserService, why: str) -> Caller:
    """The API key, a server admin or an admin operator; 403 with ``why`` otherwise."""
    who = await staff_caller(request, users)
    if not _allowed(who.principal, StaffRole.ADMIN, chat_admin=True):
        raise Forbidden(why, {"role": StaffRole.ADMIN.label})
    return who


def in_scope(who: Caller, receiver: str, receiver_type: str) -> bool:
    """Whether a group moderator (an operator limited to groups) may see and act on a
    message to ``receiver``; everyone else may."""
    groups = who.principal.groups
    return groups is None or (receiver_type == "group" and receiver in groups)


def require_unlimited(who: Caller, what: str) -> None:
    """403 for a group moderator: ``what`` reaches beyond their groups."""
    if who.principal.groups is not None:
        raise Forbidden(
            f"a group moderator cannot {what}", {"groups": sorted(who.principal.groups)}
        )


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 413 past ``limit`` bytes, 415 if not JSON, 400 if malformed
    or holding a value the server refuses (see ``protocol.parse_json``)."""
    ctype = request.headers.get("content-type", "application/json")
    if "json" not in ctype:
        raise UnsupportedMedia("send the body as application/json", {"contentType": ctype})
    declared = request.headers.get("content-length")
    if declared is not None and _INT_RE.fullmatch(declared) and int(declared) > limit:
        raise TooLarge(f"body larger than {limit} bytes", {"limit": limit})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body larger than {limit} bytes", {"limit": limit})
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def get_str(
    body: dict[str, Any], name: str, *, required: bool = True, default: str | None = None
) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"missing field '{name}'", {"field": name})
        return default or ""
    if not isinstance(value, str):
        raise BadRequest(f"field '{name}' has the wrong type", {"field": name})
    return value


def get_ident(body: dict[str, Any], name: str) -> str:
    value = get_str(body, name)
    if not is_ident(value):
        raise BadRequest(f"field '{name}' must be 1-100 of [A-Za-z0-9_-]", {"field": name})
    return value


def get_tags(body: dict[str, Any], name: str = "tags") -> tuple[str, ...]:
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadRequest(f"field '{name}' must be a list of strings", {"field": name})
    return tuple(value)


def get_dict(body: dict[str, Any], name: str) -> dict[str, Any]:
    value = body.get(name) or {}
    if not isinstance(value, dict):
        raise BadRequest(f"field '{name}' must be an object", {"field": name})
    return value


def path_ident(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if not is_ident(value):
        raise BadRequest(f"'{name}' must be 1-100 of [A-Za-z0-9_-]", {"field": name})
    return value


def _bounded_int(raw: str, what: str, name: str, lo: int, hi: int) -> int:
    """``raw`` as an integer in ``lo..hi`` (never past the storable ``INT_MAX``)."""
    hi = min(hi, INT_MAX)
    if not _INT_RE.fullmatch(raw):
        raise BadRequest(f"{what} '{name}' must be an integer", {"field": name})
    # Past 20 characters it is out of any 64-bit range; int() would refuse 4,300 digits.
    value = int(raw) if len(raw) <= 20 else hi + 1
    if not lo <= value <= hi:
        raise BadRequest(f"{what} '{name}' must be in {lo}..{hi}", {"field": name})
    return value


def query_int(request: Request, name: str, *, default: int | None, lo: int, hi: int) -> int | None:
    """Query parameter ``name`` as an integer in ``lo..hi``, or ``default`` when absent;
    400 otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return _bounded_int(raw, "query parameter", name, lo, hi)


def path_id(request: Request, name: str, field: str) -> int:
    """Path parameter ``name`` as a positive integer id that storage can hold; 400
    (``details.field`` = ``field``) otherwise."""
    return _bounded_int(request.path_params[name], "path parameter", field, 1, INT_MAX)


def ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]
