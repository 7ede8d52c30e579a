"""The moderation API: rules with revisions, lists, settings, review queue, try-out, dry-run."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from moderation.rules import list_to_json, rule_to_json
from server.chat import ChatService
from server.errors import BadRequest, Conflict, NotFound
from server.models import Message
from server.moderation_service import ModerationService
from server.providers import public_custom_api, validate_custom_api, validate_openai
from server.routes.common import (
    Deps,
    get_str,
    ok,
    path_id,
    query_int,
    read_json,
    require_staff,
)
from server.webhooks import EVENTS, public_webhooks, validate_webhooks

QUEUE_STATES = ("review", "flagged", "reported", "disapproved")
SLUG_RE = re.compile(r"[^a-z0-9]+")


def _now() -> int:
    return int(time.time())


def _slug(name: str) -> str:
    slug = SLUG_RE.sub("-", name.lower()).strip("-")[:60]
    return slug or uuid.uuid4().hex[:12]


def _settings_body(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """Validate moderation settings; a masked or absent webhook secret keeps the stored one."""
    out = dict(current)
    if "contextWindow" in body:
        cw = body["contextWindow"]
        if not isinstance(cw, int) or isinstance(cw, bool) or not 0 <= cw <= 10:
            raise BadRequest(
                "field 'contextWindow' must be an integer in 0..10", {"field": "contextWindow"}
            )
        out["contextWindow"] = cw
    if "actionOnError" in body:
        if body["actionOnError"] not in ("allow", "block"):
            raise BadRequest(
                "field 'actionOnError' must be allow or block", {"field": "actionOnError"}
            )
        out["actionOnError"] = body["actionOnError"]
    if "timeoutMs" in body:
        t = body["timeoutMs"]
        if not isinstance(t, int) or isinstance(t, bool) or not 50 <= t <= 60_000:
            raise BadRequest(
                "field 'timeoutMs' must be an integer in 50..60000", {"field": "timeoutMs"}
            )
        out["timeoutMs"] = t
    if "customApi" in body:
        api = validate_custom_api(body["customApi"], current.get("customApi"))
        if api is None:
            out.pop("customApi", None)
        else:
            out["customApi"] = api
    if "openai" in body:
        oa = validate_openai(body["openai"])
        if oa is None:
            out.pop("openai", None)
        else:
            out["openai"] = oa
    if "webhooks" in body:
        out["webhooks"] = validate_webhooks(body["webhooks"], current.get("webhooks"))
    return out


def _public_settings(value: dict[str, Any], openai_key: bool) -> dict[str, Any]:
    out = dict(value)
    if "customApi" in out:
        out["customApi"] = public_custom_api(out["customApi"])
    if "webhooks" in out:
        out["webhooks"] = public_webhooks(out["webhooks"])
    out["openaiApiKeyConfigured"] = openai_key
    return out


def routes(deps: Deps, mod: ModerationService) -> list[Route]:
    chat: ChatService = deps.chat
    settings = deps.settings
    mstore = mod.mstore

    def actor_of(who: Any) -> str:
        return "api-key" if who.principal.is_api_key else str(who.principal.uid)

    async def rules(request: Request) -> Response:
        who = await require_staff(request, chat)
        if request.method == "GET":
            return ok({"rules": await mstore.rules()})
        body = await read_json(request, settings.max_body_bytes)
        body.setdefault("id", _slug(str(body.get("name") or "")))
        rule = mod.validate_rule(body)
        try:
            stored = await mstore.put_rule(
                rule_to_json(rule), actor=actor_of(who), at=_now(), create=True
            )
        except KeyError as exc:
            raise Conflict(f"rule {rule.id!r} already exists", {"ruleId": rule.id}) from exc
        await mod.reload()
        return ok(stored, 201)

    async def rule_item(request: Request) -> Response:
        who = await require_staff(request, chat)
        rule_id = request.path_params["rule_id"]
        if request.method == "GET":
            found = await mstore.rule(rule_id)
            if found is None:
                raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
            return ok(found)
        if request.method == "DELETE":
            if not await mstore.delete_rule(rule_id, actor=actor_of(who), at=_now()):
                raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
            await mod.reload()
            return Response(status_code=204)
        body = await read_json(request, settings.max_body_bytes)
        if body.get("id", rule_id) != rule_id:
            raise BadRequest("field 'id' does not match the URL", {"field": "id"})
        body["id"] = rule_id
        rule = mod.validate_rule(body)
        try:
            stored = await mstore.put_rule(
                rule_to_json(rule), actor=actor_of(who), at=_now(), create=False
            )
        except LookupError as exc:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id}) from exc
        await mod.reload()
        return ok(stored)

    async def revisions(request: Request) -> Response:
        await require_staff(request, chat)
        rule_id = request.path_params["rule_id"]
        revs = await mstore.rule_revisions(rule_id)
        if not revs:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        return ok({"revisions": revs})

    async def dry_run(request: Request) -> Response:
        await require_staff(request, chat)
        rule_id = request.path_params["rule_id"]
        body = await read_json(request, settings.max_body_bytes)
        days = body.get("days", 7)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
            raise BadRequest("field 'days' must be an integer in 1..365", {"field": "days"})
        found = body.get("rule") or await mstore.rule(rule_id)
        if found is None:
            raise NotFound(f"rule {rule_id!r} not found", {"ruleId": rule_id})
        rule = mod.validate_rule({**found, "id": rule_id, "enabled": True})
        hits = await mod.dry_run(rule, days)
        return ok({"ruleId": rule_id, "days": days, "matches": hits, "count": len(hits)})

    async def lists(request: Request) -> Response:
        who = await require_staff(request, chat)
        if request.method == "GET":
            return ok({"lists": await mstore.lists()})
        body = await read_json(request, settings.max_body_bytes * 8)
        body.setdefault("id", _slug(str(body.get("name") or "")))
        wl = mod.validate_list(body)
        try:
            stored = await mstore.put_list(
                list_to_json(wl), actor=actor_of(who), at=_now(), create=True
            )
        except KeyError as exc:
            raise Conflict(f"list {wl.id!r} already exists", {"listId": wl.id}) from exc
        await mod.reload()
        return ok(stored, 201)

    async def list_item(request: Request) -> Response:
        who = await require_staff(request, chat)
        list_id = request.path_params["list_id"]
        if request.method == "GET":
            found = await mstore.get_list(list_id)
            if found is None:
                raise NotFound(f"list {list_id!r} not found", {"listId": list_id})
            return ok(found)
        if request.method == "DELETE":
            users = [
                r.id for r in mod.rules.values() if any(c.list_id == list_id for c in r.conditions)
            ]
            if users:
                raise Conflict(f"list {list_id!r} is used by rules {users}", {"rules": users})
            if not await mstore.delete_list(list_id, actor=actor_of(who), at=_now()):
                raise NotFound(f"list {list_id!r} not found", {"listId": list_id})
            await mod.reload()
            return Response(status_code=204)
        body = await read_json(request, settings.max_body_bytes * 8)
        if body.get("id", list_id) != list_id:
            raise BadRequest("field 'id' does not match the URL", {"field": "id"})
        wl = mod.validate_list({**body, "id": list_id})
        try:
            stored = await mstore.put_list(
                list_to_json(wl), actor=actor_of(who), at=_now(), create=False
            )
        except LookupError as exc:
            raise NotFound(f"list {list_id!r} not found", {"listId": list_id}) from exc
        await mod.reload()
        return ok(stored)

    async def settings_route(request: Request) -> Response:
        who = await require_staff(request, chat)
        current = await mstore.settings()
        has_key = mod.providers is not None and mod.providers.openai_available
        if request.method == "GET":
            return ok(_public_settings(current, has_key))
        body = await read_json(request, settings.max_body_bytes)
        body.pop("openaiApiKeyConfigured", None)
        updated = _settings_body(body, current)
        await mstore.put_settings(updated, actor=actor_of(who), at=_now())
        await mod.reload()
        return ok(_public_settings(updated, has_key))

    async def webhook_deliveries(request: Request) -> Response:
        await require_staff(request, chat)
        if mod.webhooks is None:
            return ok({"deliveries": []})
        status = request.query_params.get("status")
        if status is not None and status not in ("pending", "delivered", "failed"):
            raise BadRequest(
                "query parameter 'status' must be pending, delivered or failed", {"field": "status"}
            )
        event = request.query_params.get("event")
        if event is not None and event not in EVENTS:
            raise BadRequest(
                "query parameter 'event' must be one of " + ", ".join(EVENTS), {"field": "event"}
            )
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        found = await mod.webhook_deliveries(status=status, event=event, limit=limit)
        return ok({"deliveries": [d.to_json() for d in found]})

    async def queue(request: Request) -> Response:
        await require_staff(request, chat)
        state = request.query_params.get("state", "review")
        if state not in QUEUE_STATES:
            raise BadRequest(
                "query parameter 'state' must be one of " + ", ".join(QUEUE_STATES),
                {"field": "state"},
            )
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        items = [
            await _item(message, state, rule_id, at)
            for message, rule_id, at in await mod.review_queue(state, limit=limit)
        ]
        return ok({"state": state, "items": items})

    async def _item(message: Message, state: str, rule_id: str | None, at: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": message.to_json(),
            "state": state,
            "ruleId": rule_id,
            "at": at,
        }
        if message.moderation is not None:
            out["moderation"] = message.moderation.to_json()
        if state == "reported":
            out["reports"] = await mstore.reports_for(message.id)
        return out

    async def decide(request: Request) -> Response:
        who = await require_staff(request, chat)
        message = await chat.get_message(path_id(request, "message_id", "messageId"))
        body = await read_json(request, settings.max_body_bytes)
        reason = get_str(body, "reason", required=False, default="")
        approve = request.url.path.endswith("/approve")
        actor = actor_of(who)
        updated = await mod.decide(message, approve=approve, actor=actor, reason=reason)
        return ok({"message": updated.to_json()})

    async def evaluate(request: Request) -> Response:
        await require_staff(request, chat)
        body = await read_json(request, settings.max_body_bytes)
        text = get_str(body, "text")
        message_type = get_str(body, "messageType", required=False, default="text")
        sender_uid = body.get("sender")
        sender = await chat.user(sender_uid) if isinstance(sender_uid, str) else None
        receiver = body.get("receiver")
        receiver_type = get_str(body, "receiverType", required=False, default="user")
        verdict, detections = await mod.evaluate_text(
            text,
            message_type,
            sender,
            receiver if isinstance(receiver, str) else None,
            receiver_type,
        )
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
                    for d in detections
                ],
                "unavailable": sorted(mod.engine.unavailable_kinds()),
            }
        )

    return [
        Route("/moderation/rules", rules, methods=["GET", "POST"]),
        Route("/moderation/rules/{rule_id}", rule_item, methods=["GET", "PUT", "DELETE"]),
        Route("/moderation/rules/{rule_id}/revisions", revisions, methods=["GET"]),
        Route("/moderation/rules/{rule_id}/dry-run", dry_run, methods=["POST"]),
        Route("/moderation/lists", lists, methods=["GET", "POST"]),
        Route("/moderation/lists/{list_id}", list_item, methods=["GET", "PUT", "DELETE"]),
        Route("/moderation/settings", settings_route, methods=["GET", "PUT"]),
        Route("/moderation/webhooks/deliveries", webhook_deliveries, methods=["GET"]),
        Route("/moderation/queue", queue, methods=["GET"]),
        Route("/moderation/messages/{message_id}/approve", decide, methods=["POST"]),
        Route("/moderation/messages/{message_id}/disapprove", decide, methods=["POST"]),
        Route("/moderation/evaluate", evaluate, methods=["POST"]),
    ]
