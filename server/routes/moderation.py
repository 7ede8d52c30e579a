"""The moderation API: rules with revisions, lists, settings, the event webhooks' delivery log,
the review queue and decisions, try-out and dry-run."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import StaffRole
from server.errors import BadRequest, NotFound
from server.event_webhooks import EventWebhooks
from server.moderation_service.admin import ModerationAdmin
from server.moderation_service.review import QUEUE_STATES, ReviewDesk
from server.moderation_service.tryout import Tryout
from server.routes.common import (
    Caller,
    Deps,
    get_str,
    in_scope,
    ok,
    path_id,
    query_int,
    read_json,
    require_staff,
    require_unlimited,
)
from server.services.staff_feed import StaffFeed
from server.webhook_settings import EVENTS

DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class ModerationDeps:
    """The moderation side's services the handlers call."""

    admin: ModerationAdmin
    review: ReviewDesk
    tryout: Tryout
    webhooks: EventWebhooks
    feed: StaffFeed  # the dashboards' live feed: decisions and claims (issue 17)


def _choice(request: Request, name: str, allowed: tuple[str, ...], what: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise BadRequest(f"query parameter '{name}' must be {what}", {"field": name})
    return value


def routes(deps: Deps, mod: ModerationDeps) -> list[Route]:
    users, settings = deps.users, deps.settings
    admin, review, tryout = mod.admin, mod.review, mod.tryout
    body_limit = settings.max_body_bytes

    async def viewer_or_admin(request: Request) -> Caller:
        """Reads for every operator, writes for admin operators (issue 17 roles); server
        moderators and admins and the API key both, as the contract says."""
        if request.method == "GET":
            return await require_staff(request, users, StaffRole.VIEWER)
        return await require_staff(request, users, StaffRole.ADMIN)

    async def rules(request: Request) -> Response:
        who = await viewer_or_admin(request)
        if request.method == "GET":
            return ok({"rules": await admin.rules()})
        body = await read_json(request, body_limit)
        return ok(await admin.create_rule(body, actor=who.actor), 201)

    async def rule_item(request: Request) -> Response:
        who = await viewer_or_admin(request)
        rule_id = request.path_params["rule_id"]
        if request.method == "GET":
            return ok(await admin.rule(rule_id))
        if request.method == "DELETE":
            await admin.delete_rule(rule_id, actor=who.actor)
            return Response(status_code=204)
        body = await read_json(request, body_limit)
        return ok(await admin.replace_rule(rule_id, body, actor=who.actor))

    async def revisions(request: Request) -> Response:
        await require_staff(request, users, StaffRole.VIEWER)
        return ok({"revisions": await admin.revisions(request.path_params["rule_id"])})

    async def dry_run(request: Request) -> Response:
        who = await require_staff(request, users)
        require_unlimited(who, "dry-run a rule over every conversation")
        rule_id = request.path_params["rule_id"]
        body = await read_json(request, body_limit)
        days = body.get("days", 7)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            raise BadRequest("field 'days' must be an integer in 1..365", {"field": "days"})
        draft = body.get("rule") or None
        if draft is not None and not isinstance(draft, dict):
            raise BadRequest("field 'rule' must be a rule object", {"field": "rule"})
        rule = await admin.rule_for_dry_run(rule_id, draft)
        hits = await tryout.dry_run(rule, days)
        return ok({"ruleId": rule_id, "days": days, "matches": hits, "count": len(hits)})

    async def defaults(request: Request) -> Response:
        await require_staff(request, users, StaffRole.VIEWER)
        return ok(await admin.defaults())

    async def reset(request: Request) -> Response:
        who = await require_staff(request, users, StaffRole.ADMIN)
        rule, created = await admin.reset_rule(request.path_params["rule_id"], actor=who.actor)
        return ok(rule, 201 if created else 200)

    async def lists(request: Request) -> Response:
        who = await viewer_or_admin(request)
        if request.method == "GET":
            return ok({"lists": await admin.lists()})
        body = await read_json(request, body_limit * 8)
        return ok(await admin.create_list(body, actor=who.actor), 201)

    async def list_item(request: Request) -> Response:
        who = await viewer_or_admin(request)
        list_id = request.path_params["list_id"]
        if request.method == "GET":
            return ok(await admin.get_list(list_id))
        if request.method == "DELETE":
            await admin.delete_list(list_id, actor=who.actor)
            return Response(status_code=204)
        body = await read_json(request, body_limit * 8)
        return ok(await admin.replace_list(list_id, body, actor=who.actor))

    async def settings_route(request: Request) -> Response:
        who = await viewer_or_admin(request)
        if request.method == "GET":
            return ok(await admin.settings())
        body = await read_json(request, body_limit)
        body.pop("openaiApiKeyConfigured", None)
        return ok(await admin.put_settings(body, actor=who.actor))

    async def webhook_deliveries(request: Request) -> Response:
        await require_staff(request, users, StaffRole.ADMIN)
        status = _choice(request, "status", DELIVERY_STATES, "pending, delivered or failed")
        event = _choice(request, "event", EVENTS, "one of " + ", ".join(EVENTS))
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        found = await mod.webhooks.deliveries(status=status, event=event, limit=limit)
        return ok({"deliveries": [d.to_json() for d in found]})

    async def queue(request: Request) -> Response:
        who = await require_staff(request, users, StaffRole.VIEWER)
        state = _choice(request, "state", QUEUE_STATES, "one of " + ", ".join(QUEUE_STATES))
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        state = state or "review"
        items = await review.items(state, limit=limit)
        if who.principal.groups is not None:  # a group moderator: their groups' items only
            items = [
                i
                for i in items
                if in_scope(
                    who,
                    str(i.get("message", {}).get("receiver")),
                    str(i.get("message", {}).get("receiverType")),
                )
            ]
        return ok({"state": state, "items": items})

    async def decide(request: Request) -> Response:
        who = await require_staff(request, users)
        message_id = path_id(request, "message_id", "messageId")
        body = await read_json(request, body_limit)
        reason = get_str(body, "reason", required=False, default="")
        approve = request.url.path.endswith("/approve")
        if who.principal.groups is not None:
            message = await deps.messaging.get_message(message_id)
            if not in_scope(who, message.receiver, message.receiver_type):
                raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        mod.feed.check(message_id, who.actor)  # another moderator is deciding it: 409
        updated = await review.decide(message_id, approve=approve, actor=who.actor, reason=reason)
        mod.feed.decided(message_id, "approved" if approve else "disapproved", who.actor)
        return ok({"message": updated.to_json()})

    async def evaluate(request: Request) -> Response:
        await require_staff(request, users)
        body = await read_json(request, body_limit)
        text = get_str(body, "text")
        message_type = get_str(body, "messageType", required=False, default="text")
        sender, receiver = body.get("sender"), body.get("receiver")
        receiver_type = get_str(body, "receiverType", required=False, default="user")
        result = await tryout.evaluate_text(
            text,
            message_type,
            sender if isinstance(sender, str) else None,
            receiver if isinstance(receiver, str) else None,
            receiver_type,
        )
        verdict = result.verdict
        return ok(
            {
                "verdict": {
                    "status": verdict.status.value,
                    "matches": [
                        {
                            "ruleId": m.rule_id,
                            "ruleName": m.rule_name,
                            "reason": m.reason,
                            "confidence": m.confidence,
                            "actions": [a.value for a in m.actions],
                        }
                        for m in verdict.matches
                    ],
                },
                "detections": [
                    {
                        "detector": d.detector,
                        "category": d.category,
                        "confidence": d.confidence,
                        "reason": d.reason,
                    }
                    for d in result.detections
                ],
                "unavailable": sorted(result.unavailable),
            }
        )

    return [
        Route("/moderation/rules", rules, methods=["GET", "POST"]),
        Route("/moderation/rules/{rule_id}", rule_item, methods=["GET", "PUT", "DELETE"]),
        Route("/moderation/rules/{rule_id}/revisions", revisions, methods=["GET"]),
        Route("/moderation/rules/{rule_id}/dry-run", dry_run, methods=["POST"]),
        Route("/moderation/rules/{rule_id}/reset", reset, methods=["POST"]),
        Route("/moderation/defaults", defaults, methods=["GET"]),
        Route("/moderation/lists", lists, methods=["GET", "POST"]),
        Route("/moderation/lists/{list_id}", list_item, methods=["GET", "PUT", "DELETE"]),
        Route("/moderation/settings", settings_route, methods=["GET", "PUT"]),
        Route("/moderation/webhooks/deliveries", webhook_deliveries, methods=["GET"]),
        Route("/moderation/queue", queue, methods=["GET"]),
        Route("/moderation/messages/{message_id}/approve", decide, methods=["POST"]),
        Route("/moderation/messages/{message_id}/disapprove", decide, methods=["POST"]),
        Route("/moderation/evaluate", evaluate, methods=["POST"]),
    ]
