"""Groups, membership, scopes, kicks and bans."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.errors import BadRequest
from server.jsoncodec import INT_MAX
from server.models import Scope
from server.routes.common import (
    Deps,
    caller,
    get_ident,
    get_str,
    get_tags,
    ok,
    path_ident,
    query_int,
    read_json,
)

GROUP_TYPES = ("public", "private")
MEMBER_SCOPES = ("admin", "moderator", "participant")


def _scope(value: object) -> Scope:
    if value is None:
        return Scope.PARTICIPANT
    if not isinstance(value, str) or value not in MEMBER_SCOPES:
        raise BadRequest(
            "field 'scope' must be admin, moderator or participant", {"field": "scope"}
        )
    return Scope.parse(value)


def routes(deps: Deps) -> list[Route]:
    users, groups, settings = deps.users, deps.groups, deps.settings

    async def create_group(request: Request) -> Response:
        who = await caller(request, users)
        body = await read_json(request, settings.max_body_bytes)
        type_ = get_str(body, "type", required=False, default="public")
        if type_ not in GROUP_TYPES:
            raise BadRequest("field 'type' must be public or private", {"field": "type"})
        owner = body.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise BadRequest("field 'owner' must be a uid", {"field": "owner"})
        guid = get_ident(body, "guid")
        group = await groups.create_group(
            who.principal,
            guid=guid,
            name=get_str(body, "name", required=False, default=guid),
            type_=type_,
            tags=get_tags(body),
            owner=owner,
        )
        _, members = await groups.get_group(who.principal, group.guid)
        return ok(group.to_json(members), 201)

    async def get_group(request: Request) -> Response:
        who = await caller(request, users)
        group, members = await groups.get_group(who.principal, path_ident(request, "guid"))
        return ok(group.to_json(members))

    async def add_member(request: Request) -> Response:
        who = await caller(request, users)
        guid = path_ident(request, "guid")
        body = await read_json(request, settings.max_body_bytes)
        uid = get_ident(body, "uid")
        await groups.add_member(who.principal, guid, uid, _scope(body.get("scope")))
        group, members = await groups.get_group(who.principal, guid)
        return ok(group.to_json(members), 201)

    async def member_item(request: Request) -> Response:
        who = await caller(request, users)
        guid, uid = path_ident(request, "guid"), path_ident(request, "uid")
        if request.method == "DELETE":
            await groups.remove_member(who.principal, guid, uid)
            return Response(status_code=204)
        body = await read_json(request, settings.max_body_bytes)
        if "scope" not in body:
            raise BadRequest("missing field 'scope'", {"field": "scope"})
        await groups.set_scope(who.principal, guid, uid, _scope(body["scope"]))
        group, members = await groups.get_group(who.principal, guid)
        return ok(group.to_json(members))

    async def ban(request: Request) -> Response:
        who = await caller(request, users)
        guid = path_ident(request, "guid")
        body = await read_json(request, settings.max_body_bytes)
        uid = get_ident(body, "uid")
        await groups.ban(who.principal, guid, uid, get_str(body, "reason", required=False))
        return ok({"guid": guid, "uid": uid, "banned": True}, 201)

    async def group_reports(request: Request) -> Response:
        """Open reports on the group's messages: its moderators and up, and app staff."""
        who = await caller(request, users)
        limit = query_int(request, "limit", default=100, lo=1, hi=500) or 100
        items = await deps.messaging.reports.group_reports(
            who.principal, path_ident(request, "guid"), limit=limit
        )
        return ok({"items": items})

    async def group_audit(request: Request) -> Response:
        """The part of the audit log that concerns the group: its moderators and up, staff."""
        who = await caller(request, users)
        guid = path_ident(request, "guid")
        await groups.require_group_staff(who.principal, guid)
        since = query_int(request, "since", default=0, lo=0, hi=INT_MAX) or 0
        found = await deps.audit.of_group(guid, since)
        return ok({"entries": [e.to_json() for e in found]})

    async def unban(request: Request) -> Response:
        who = await caller(request, users)
        await groups.unban(who.principal, path_ident(request, "guid"), path_ident(request, "uid"))
        return Response(status_code=204)

    return [
        Route("/groups", create_group, methods=["POST"]),
        Route("/groups/{guid}", get_group, methods=["GET"]),
        Route("/groups/{guid}/members", add_member, methods=["POST"]),
        Route("/groups/{guid}/members/{uid}", member_item, methods=["PATCH", "DELETE"]),
        Route("/groups/{guid}/bans", ban, methods=["POST"]),
        Route("/groups/{guid}/bans/{uid}", unban, methods=["DELETE"]),
        Route("/groups/{guid}/reports", group_reports, methods=["GET"]),
        Route("/groups/{guid}/audit", group_audit, methods=["GET"]),
    ]
