"""The review card (issue 17 item 4): what a moderator needs to decide one queue item, in one
call: the message, the conversation before it, the sender, their strike history (decisions,
appeals, restrictions), the reports on the message, the rule that held it, and, for a text,
what every detector makes of it now (category, score) beside the rule's thresholds.

``GET /moderation/messages/{id}/card[?ruleId=]``, for staff from the viewer role up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import StaffRole
from server.errors import ClientError, NotFound
from server.moderation_service.admin import ModerationAdmin
from server.moderation_service.review import ReviewDesk
from server.moderation_service.tryout import Tryout
from server.routes.common import Deps, in_scope, ok, path_id, require_staff
from server.services.appeals import Appeals

#: Messages of the conversation shown before the one under review.
CONTEXT = 5


@dataclass(frozen=True)
class CardDeps:
    appeals: Appeals
    review: ReviewDesk
    admin: ModerationAdmin
    tryout: Tryout


def routes(deps: Deps, card: CardDeps) -> list[Route]:
    users, messaging = deps.users, deps.messaging

    async def review_card(request: Request) -> Response:
        who = await require_staff(request, users, StaffRole.VIEWER)
        message_id = path_id(request, "message_id", "messageId")
        message = await messaging.read_message(who.principal, message_id)
        if not in_scope(who, message.receiver, message.receiver_type):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        body = message.to_json()
        context = await messaging.history(
            who.principal, body["conversationId"], before=message.id, limit=CONTEXT
        )
        sender = await users.user(message.sender)
        rule_id = request.query_params.get("ruleId") or (
            message.moderation.rule_id if message.moderation is not None else None
        )
        rule: dict[str, Any] | None = None
        if rule_id:
            try:
                rule = await card.admin.rule(rule_id)
            except ClientError:
                rule = None  # deleted since, or not a stored rule (e.g. "manual")
        result: dict[str, Any] = {
            "message": body,
            "context": [m.to_json() for m in context],
            "sender": sender.to_json() if sender is not None else None,
            "history": await card.appeals.strikes(message.sender),
            "reports": await card.review.reports_for(message.id),
            "rule": rule,
            "detections": [],
            "unavailable": [],
        }
        if message.text:
            evaluation = await card.tryout.evaluate_text(
                message.text, message.type, message.sender, message.receiver, message.receiver_type
            )
            result["detections"] = [
                {
                    "detector": d.detector,
                    "category": d.category,
                    "confidence": d.confidence,
                    "reason": d.reason,
                }
                for d in evaluation.detections
            ]
            result["unavailable"] = sorted(evaluation.unavailable)
        return ok(result)

    return [Route("/moderation/messages/{message_id}/card", review_card, methods=["GET"])]
