"""The dashboard's session cookie, resolved once per request (pure ASGI; issue 17).

For an API request (``/api/...``) or the dashboard's live socket carrying the operator
session cookie, the session is looked up and put in the scope under ``STAFF_SCOPE_KEY``: a
``StaffSession``, or the ``ClientError`` saying why it does not count. The staff checks in
``routes/common.py`` read it; nothing else does, so a session never stands in for a user
token or the API key on the chat routes.

Cross-site request forgery is refused three ways: the cookie is ``SameSite=Strict``; a
request whose ``Origin`` is not this server's host is refused; and an unsafe request
(anything but GET/HEAD/OPTIONS, and the socket's handshake is checked by origin) must carry
``X-CSRF-Token``, which only a page that read ``/api/v1/operators/me`` can know.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from server.errors import ClientError, Forbidden
from server.operator_auth import CSRF_HEADER, SESSION_COOKIE
from server.routes.common import STAFF_SCOPE_KEY
from server.services.operators import OperatorService

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PATHS = ("/api/", "/dashboard/")


def same_origin(headers: Headers) -> bool:
    """False only when an ``Origin`` header names another host than ``Host``."""
    origin = headers.get("origin")
    if origin is None:
        return True
    return bool(origin != "null" and urlsplit(origin).netloc == headers.get("host", ""))


class StaffSessions:
    """Resolves the operator session cookie into the scope (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, operators: OperatorService) -> None:
        self.app = app
        self.operators = operators

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(_PATHS):
            headers = Headers(scope=scope)
            token = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
            if token:
                scope[STAFF_SCOPE_KEY] = await self._resolve(scope, headers, token)
        await self.app(scope, receive, send)

    async def _resolve(self, scope: Scope, headers: Headers, token: str) -> object:
        try:
            session = await self.operators.authenticate(token)
        except ClientError as exc:
            return exc
        if not same_origin(headers):
            return Forbidden("a cross-origin request cannot use the dashboard session")
        unsafe = scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        if unsafe and not self.operators.csrf_ok(token, headers.get(CSRF_HEADER)):
            return Forbidden(
                "missing or wrong CSRF token: send X-CSRF-Token from /api/v1/operators/me",
                {"csrf": True},
            )
        return session
