"""The inbox (``GET /me/conversations``) and the user directory (``GET /users``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest
from server.protocol import is_ident
from server.routes.common import Deps, caller, ok, query_int, require_user
from server.services.inbox import DirectoryService, InboxService, decode_cursor

#: The longest ``search`` prefix: a uid or a name's start.
MAX_SEARCH_CHARS = 100


def routes(deps: Deps, *, inbox: InboxService, directory: DirectoryService) -> list[Route]:
    users = deps.users

    async def conversations(request: Request) -> Response:
        _, user = await require_user(request, users)
        limit = query_int(request, "limit", default=50, lo=1, hi=100)
        assert limit is not None
        raw = request.query_params.get("before")
        before = decode_cursor(raw) if raw else None
        return ok(await inbox.conversations(user, limit=limit, before=before))

    async def search_users(request: Request) -> Response:
        who = await caller(request, users)
        search = request.query_params.get("search", "")
        if len(search) > MAX_SEARCH_CHARS:
            raise BadRequest(
                f"query parameter 'search' is longer than {MAX_SEARCH_CHARS} characters",
                {"field": "search"},
            )
        cursor = request.query_params.get("cursor") or None
        if cursor is not None and not is_ident(cursor):
            raise BadRequest("malformed cursor", {"field": "cursor"})
        limit = query_int(request, "limit", default=20, lo=1, hi=100)
        assert limit is not None
        return ok(await directory.search(who.principal, search=search, cursor=cursor, limit=limit))

    return [
        Route("/me/conversations", conversations, methods=["GET"]),
        Route("/users", search_users, methods=["GET"]),
    ]
