"""Security headers on every HTTP response (pure ASGI, so it costs one list append).

The demo client and the dashboard load only their own modules and stylesheet, and render
every user-supplied value with ``textContent``: the policy allows nothing inline and nothing
from elsewhere, forbids framing (clickjacking), stops MIME sniffing, and sends no referrer
(media links will carry signed tokens in their query).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none';"
    " form-action 'self'; frame-ancestors 'none'"
)

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeaders:
    """Adds :data:`HEADERS` to every HTTP response the app sends."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A response that sets one of these itself (media downloads: a stricter CSP)
                # keeps its own.
                own = {name.lower() for name, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(h for h in HEADERS if h[0] not in own),
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


_NUL_ANSWER = (
    b'{"code":"ERR_BAD_REQUEST","message":"NUL characters are not allowed in the URL","details":{}}'
)


class RefuseNul:
    """400 for a request whose path or query holds a NUL character (``%00``).

    No identifier, search or token contains one, and PostgreSQL text cannot store one (SQLite
    can): refused at the door, the two backends answer alike. JSON bodies get the same rule
    in ``protocol.parse_json``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and (
            b"%00" in scope.get("query_string", b"")
            or "\x00" in scope.get("path", "")
            or b"%00" in (scope.get("raw_path") or b"")
        ):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_NUL_ANSWER)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _NUL_ANSWER})
            return
        await self.app(scope, receive, send)
