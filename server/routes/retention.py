"""Retention: the periods, the holds, and running the job now (issue 15 item 7). Admins and
the API key only."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest
from server.routes.common import Deps, ok, path_ident, read_json, require_admin
from server.services.retention import RetentionService

WHY = "retention is set by admins or the API key"


def routes(deps: Deps, retention: RetentionService) -> list[Route]:
    users, limit_bytes = deps.users, deps.settings.max_body_bytes

    async def get_policy(request: Request) -> Response:
        await require_admin(request, users, WHY)
        return ok(await retention.policy())

    async def put_policy(request: Request) -> Response:
        who = await require_admin(request, users, WHY)
        return ok(await retention.set_app(who.principal, await read_json(request, limit_bytes)))

    async def put_group(request: Request) -> Response:
        who = await require_admin(request, users, WHY)
        guid = path_ident(request, "guid")
        body = await read_json(request, limit_bytes)
        return ok(await retention.set_group(who.principal, guid, body))

    async def add_hold(request: Request) -> Response:
        who = await require_admin(request, users, WHY)
        return ok(
            await retention.add_hold(who.principal, await read_json(request, limit_bytes)), 201
        )

    async def remove_hold(request: Request) -> Response:
        who = await require_admin(request, users, WHY)
        hold_id = request.path_params["hold_id"]
        if not (3 <= len(hold_id) <= 40) or not all(c.isalnum() or c == "_" for c in hold_id):
            raise BadRequest("'hold_id' is not a valid id", {"field": "holdId"})
        await retention.remove_hold(who.principal, hold_id)
        return Response(status_code=204)

    async def run_now(request: Request) -> Response:
        who = await require_admin(request, users, WHY)
        return ok(await retention.run(who.actor))

    return [
        Route("/retention", get_policy, methods=["GET"]),
        Route("/retention", put_policy, methods=["PUT"]),
        Route("/retention/run", run_now, methods=["POST"]),
        Route("/retention/holds", add_hold, methods=["POST"]),
        Route("/retention/holds/{hold_id}", remove_hold, methods=["DELETE"]),
        Route("/groups/{guid}/retention", put_group, methods=["PUT"]),
    ]
