"""Reactions and threads over REST (issue 16 item 8): react, unreact, who reacted, and a
thread's page of replies."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import Forbidden
from server.jsoncodec import INT_MAX
from server.protocol import check_emoji
from server.routes.common import Deps, caller, ok, path_id, query_int, read_json
from server.services.reactions import Reactions


def routes(deps: Deps, reactions: Reactions) -> list[Route]:
    users, settings = deps.users, deps.settings

    async def collection(request: Request) -> Response:
        who = await caller(request, users)
        message_id = path_id(request, "message_id", "messageId")
        if request.method == "GET":
            return ok(await reactions.who_reacted(who.principal, message_id))
        if who.user is None:
            raise Forbidden("reactions are made by users")
        body = await read_json(request, settings.max_body_bytes)
        emoji = check_emoji(body.get("emoji"))
        result, changed = await reactions.react(who.user, message_id, emoji, add=True)
        return ok(result, 201 if changed else 200)

    async def item(request: Request) -> Response:
        who = await caller(request, users)
        if who.user is None:
            raise Forbidden("reactions are made by users")
        message_id = path_id(request, "message_id", "messageId")
        # The server decodes the path before routing: %F0%9F%91%8D arrives as the emoji.
        emoji = check_emoji(request.path_params["emoji"])
        result, _ = await reactions.react(who.user, message_id, emoji, add=False)
        return ok(result)

    async def thread(request: Request) -> Response:
        who = await caller(request, users)
        message_id = path_id(request, "message_id", "messageId")
        before = query_int(request, "before", default=None, lo=1, hi=INT_MAX)
        limit = query_int(request, "limit", default=50, lo=1, hi=100) or 50
        return ok(await reactions.thread(who.principal, message_id, before=before, limit=limit))

    return [
        Route("/messages/{message_id}/reactions", collection, methods=["GET", "POST"]),
        Route("/messages/{message_id}/reactions/{emoji}", item, methods=["DELETE"]),
        Route("/messages/{message_id}/thread", thread, methods=["GET"]),
    ]
