"""Messages over REST: history, send (as a user, or as any user with the API key), edit,
delete, and user reports."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server import protocol
from server.errors import BadRequest, Forbidden
from server.jsoncodec import INT_MAX
from server.models import User
from server.routes.common import (
    Caller,
    Deps,
    caller,
    get_str,
    ok,
    path_id,
    query_int,
    read_json,
)
from server.services.sender_view import SenderView

CID_RE = re.compile(r"[A-Za-z0-9_-]{1,220}")


def _message_id(request: Request) -> int:
    return path_id(request, "message_id", "messageId")


def routes(deps: Deps, *, sender_view: SenderView) -> list[Route]:
    users, messaging, settings, limits = deps.users, deps.messaging, deps.settings, deps.limits

    async def acting_user(who: Caller, sender: object) -> User:
        if who.user is not None:
            if sender is not None and sender != who.user.uid:
                raise Forbidden("a user token may only act as its own user")
            return who.user
        if not isinstance(sender, str):
            raise BadRequest("field 'sender' is required with the API key", {"field": "sender"})
        return await users.require_user(sender)

    async def history(request: Request) -> Response:
        who = await caller(request, users)
        cid = request.path_params["cid"]
        if not CID_RE.fullmatch(cid):
            raise BadRequest("malformed conversation id", {"field": "conversationId"})
        before = query_int(request, "before", default=None, lo=1, hi=INT_MAX)
        limit = query_int(request, "limit", default=50, lo=1, hi=100)
        assert limit is not None
        # One more than asked tells whether older messages remain.
        page = await messaging.history(who.principal, cid, before=before, limit=limit + 1)
        messages = page[1:] if len(page) > limit else page
        # A media message's attachment.url is signed for the caller.
        bodies = await messaging.render_all(messages, who.principal.uid)
        await sender_view.add(bodies, messages, who.principal.uid)  # ticks, block reasons
        if deps.reactions is not None:  # reactions, myReactions, replyCount
            await deps.reactions.annotate(
                bodies, None if who.principal.is_staff else who.principal.uid
            )
        return ok({"messages": bodies, "hasMore": len(page) > limit})

    async def send(request: Request) -> Response:
        who = await caller(request, users)  # 401 before anything about the body
        body = await read_json(request, settings.max_body_bytes)
        user = await acting_user(who, body.get("sender"))
        cmd = protocol.parse_send(body, limits)
        message = await messaging.post_message(user, cmd)
        return ok({"message": await messaging.render(message, user.uid)}, 201)

    async def message_item(request: Request) -> Response:
        who = await caller(request, users)
        message_id = _message_id(request)
        if request.method == "GET":
            message = await messaging.read_message(who.principal, message_id)
            body = await messaging.render(message, who.principal.uid)
            if deps.reactions is not None:
                viewer = None if who.principal.is_staff else who.principal.uid
                await deps.reactions.annotate([body], viewer)
            return ok({"message": body})
        if request.method == "DELETE":
            deleted = await messaging.delete_message(who.principal, message_id)
            return ok({"message": deleted.to_json()})
        body = await read_json(request, settings.max_body_bytes)
        if who.user is None:
            raise Forbidden("only the sender may edit a message")
        text = protocol.check_text(get_str(body, "text"), limits)
        edited = await messaging.edit_message(who.user, message_id, text)
        return ok({"message": await messaging.render(edited, who.user.uid)})

    async def report(request: Request) -> Response:
        who = await caller(request, users)
        body = await read_json(request, settings.max_body_bytes)
        if who.user is None:
            raise Forbidden("reports are made by users")
        reason = protocol.check_text(get_str(body, "reason"), limits, "reason")
        remarks = protocol.check_text(get_str(body, "remarks", required=False), limits, "remarks")
        report = await messaging.report_message(
            who.user, _message_id(request), reason, remarks, body.get("category")
        )
        return ok(report, 201)

    return [
        Route("/conversations/{cid}/messages", history, methods=["GET"]),
        Route("/messages", send, methods=["POST"]),
        Route("/messages/{message_id}", message_item, methods=["GET", "PATCH", "DELETE"]),
        Route("/messages/{message_id}/flag", report, methods=["POST"]),
    ]
