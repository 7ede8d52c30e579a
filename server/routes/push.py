"""Offline-push endpoints over REST (issue 16 item 7): a user's devices register, list and
remove where they get pushes (``server/push.py``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.push import PushService
from server.routes.common import Deps, ok, read_json, require_user


def routes(deps: Deps, push: PushService) -> list[Route]:
    users, settings = deps.users, deps.settings

    async def collection(request: Request) -> Response:
        _, user = await require_user(request, users)
        if request.method == "GET":
            return ok({"endpoints": await push.endpoints(user.uid)})
        body = await read_json(request, settings.max_body_bytes)
        return ok(await push.register(user.uid, body), 201)

    async def item(request: Request) -> Response:
        _, user = await require_user(request, users)
        await push.unregister(user.uid, request.path_params["endpoint_id"])
        return Response(status_code=204)

    return [
        Route("/me/push-endpoints", collection, methods=["GET", "POST"]),
        Route("/me/push-endpoints/{endpoint_id}", item, methods=["DELETE"]),
    ]
