"""Decisions, appeals, restrictions, slow mode and the terms catalogue (issue 15)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import StaffRole
from server.errors import BadRequest, Forbidden
from server.models import Scope
from server.routes.common import (
    Deps,
    caller,
    ok,
    path_ident,
    query_int,
    read_json,
    require_admin,
    require_staff,
    require_unlimited,
    require_user,
)
from server.services.appeals import Appeals
from server.services.decisions import Decisions
from server.services.escalation import EscalationLadders
from server.services.probation import Probation
from server.services.restrictions import Restrictions


@dataclass(frozen=True)
class DecisionDeps:
    decisions: Decisions
    appeals: Appeals
    restrictions: Restrictions
    ladders: EscalationLadders
    probation: Probation


def _token(request: Request, name: str) -> str:
    value: str = request.path_params[name]
    if not (1 <= len(value) <= 100) or not all(c.isalnum() or c in "_-" for c in value):
        raise BadRequest(f"'{name}' is not a valid id", {"field": name})
    return value


def routes(deps: Deps, d: DecisionDeps) -> list[Route]:
    users, groups, limit_bytes = deps.users, deps.groups, deps.settings.max_body_bytes
    decisions, appeals, restrictions = d.decisions, d.appeals, d.restrictions

    async def my_decisions(request: Request) -> Response:
        _who, user = await require_user(request, users)
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        return ok({"decisions": await decisions.mine(user.uid, limit=limit)})

    async def appeal(request: Request) -> Response:
        _who, user = await require_user(request, users)
        body = await read_json(request, limit_bytes)
        created = await appeals.appeal(user.uid, _token(request, "decision_id"), body.get("note"))
        return ok({"appealId": created.appeal_id, "state": created.state}, 201)

    async def decide_appeal(request: Request) -> Response:
        who = await require_staff(request, users)
        require_unlimited(who, "decide appeals")
        body = await read_json(request, limit_bytes)
        return ok(
            await appeals.decide(
                _token(request, "appeal_id"), body.get("outcome"), body.get("reason"), who.actor
            )
        )

    async def user_restrictions(request: Request) -> Response:
        who = await require_staff(
            request, users, StaffRole.VIEWER if request.method == "GET" else StaffRole.MODERATOR
        )
        uid = path_ident(request, "uid")
        if request.method == "GET":
            await restrictions.load()
            return ok({"restrictions": [r.to_json() for r in restrictions.of_user(uid)]})
        body = await read_json(request, limit_bytes)
        if who.principal.groups is not None and body.get("guid") not in who.principal.groups:
            raise Forbidden(
                "a group moderator restricts in their groups only: send guid",
                {"field": "guid", "groups": sorted(who.principal.groups)},
            )
        record = await restrictions.impose(who.principal, uid, body)
        return ok(record.to_json(), 201)

    async def lift_restriction(request: Request) -> Response:
        who = await require_staff(request, users)
        uid = path_ident(request, "uid")
        restriction_id = _token(request, "restriction_id")
        if who.principal.groups is not None:
            scopes = {r.restriction_id: r.scope for r in restrictions.of_user(uid)}
            scope = scopes.get(restriction_id, "")
            if not (scope.startswith("group:") and scope[6:] in who.principal.groups):
                raise Forbidden("a group moderator lifts restrictions in their groups only")
        record = await restrictions.lift(who.principal, uid, restriction_id)
        return ok(record.to_json())

    async def strikes(request: Request) -> Response:
        await require_staff(request, users, StaffRole.VIEWER)
        return ok(await appeals.strikes(path_ident(request, "uid")))

    async def patch_group(request: Request) -> Response:
        who = await caller(request, users)
        guid = path_ident(request, "guid")
        if not who.principal.is_staff:
            members = await groups.members(guid)
            if members.get(who.principal.uid or "", Scope.NONE) < Scope.MODERATOR:
                raise Forbidden("group moderators and admins, server staff or the API key only")
        body = await read_json(request, limit_bytes)
        seconds = await restrictions.set_slow_mode(who.principal, guid, body.get("slowModeSeconds"))
        return ok({"guid": guid, "slowModeSeconds": seconds})

    async def terms(request: Request) -> Response:
        if request.method == "GET":
            await require_staff(request, users, StaffRole.VIEWER)
            return ok({"terms": await decisions.terms()})
        who = await require_admin(request, users, "the terms catalogue is edited by admins")
        body = await read_json(request, limit_bytes)
        return ok({"terms": await decisions.put_terms(body.get("terms"), who.actor)})

    async def escalation(request: Request) -> Response:
        """A rule's escalation ladder: staff read it, admins (or the API key) set it."""
        rule_id = _token(request, "rule_id")
        if request.method == "GET":
            await require_staff(request, users)
            return ok({"ruleId": rule_id, "ladder": await d.ladders.ladder(rule_id)})
        who = await require_admin(request, users, "escalation ladders are set by admins")
        body = await read_json(request, limit_bytes)
        ladder = await d.ladders.set_ladder(who.actor, rule_id, body.get("ladder", body) or None)
        return ok({"ruleId": rule_id, "ladder": ladder})

    async def probation(request: Request) -> Response:
        """New-account probation: staff read it, admins (or the API key) set it."""
        if request.method == "GET":
            await require_staff(request, users)
            return ok(await d.probation.settings())
        who = await require_admin(request, users, "probation is set by admins")
        return ok(await d.probation.put(who.actor, await read_json(request, limit_bytes)))

    return [
        Route("/me/decisions", my_decisions, methods=["GET"]),
        Route("/decisions/{decision_id}/appeal", appeal, methods=["POST"]),
        Route("/moderation/appeals/{appeal_id}/decide", decide_appeal, methods=["POST"]),
        Route("/users/{uid}/restrictions", user_restrictions, methods=["GET", "POST"]),
        Route("/users/{uid}/restrictions/{restriction_id}", lift_restriction, methods=["DELETE"]),
        Route("/users/{uid}/strikes", strikes, methods=["GET"]),
        Route("/groups/{guid}", patch_group, methods=["PATCH"]),
        Route("/moderation/terms", terms, methods=["GET", "PUT"]),
        Route("/moderation/rules/{rule_id}/escalation", escalation, methods=["GET", "PUT"]),
        Route("/moderation/probation", probation, methods=["GET", "PUT"]),
    ]
