"""The audit log: the API key, server admins, and operators of every role (viewers up)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import StaffRole
from server.jsoncodec import INT_MAX
from server.routes.common import Deps, ok, query_int, require_staff, require_unlimited


def routes(deps: Deps) -> list[Route]:
    users, audit = deps.users, deps.audit

    async def entries(request: Request) -> Response:
        who = await require_staff(request, users, StaffRole.VIEWER, chat_admin=True)
        require_unlimited(who, "read the whole audit log")
        since = query_int(request, "since", default=0, lo=0, hi=INT_MAX) or 0
        return ok({"entries": [e.to_json() for e in await audit.entries(since)]})

    return [Route("/audit", entries, methods=["GET"])]
