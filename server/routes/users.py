"""Users, tokens, GDPR export/erasure, and the caller's block list."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server.auth import Role
from server.errors import BadRequest
from server.routes.common import (
    Deps,
    get_dict,
    get_ident,
    get_str,
    get_tags,
    ok,
    path_ident,
    read_json,
    require_api_key,
    require_user,
)

ROLES = {r.value for r in Role}


def _role(body: dict[str, Any]) -> str:
    role = get_str(body, "role", required=False, default="user")
    if role not in ROLES:
        raise BadRequest("field 'role' must be user, moderator or admin", {"field": "role"})
    return role


def routes(deps: Deps) -> list[Route]:
    users, accounts, blocks, settings = deps.users, deps.accounts, deps.blocks, deps.settings

    async def create_user(request: Request) -> Response:
        who = await require_api_key(request, users)
        body = await read_json(request, settings.max_body_bytes)
        uid = get_ident(body, "uid")
        user = await users.create_user(
            who.principal,
            uid=uid,
            name=get_str(body, "name", required=False, default=uid),
            role=_role(body),
            tags=get_tags(body),
            metadata=get_dict(body, "metadata"),
        )
        return ok(user.to_json(), 201)

    async def user_item(request: Request) -> Response:
        who = await require_api_key(request, users)
        uid = path_ident(request, "uid")
        if request.method == "GET":
            return ok((await users.require_user(uid)).to_json())
        if request.method == "DELETE":
            erase = request.query_params.get("erase", "false").lower() in ("1", "true", "yes")
            await accounts.delete_user(who.principal, uid, erase=erase)
            return Response(status_code=204)
        body = await read_json(request, settings.max_body_bytes)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = get_str(body, "name")
        if "role" in body:
            changes["role"] = _role(body)
        if "tags" in body:
            changes["tags"] = get_tags(body)
        if "metadata" in body:
            changes["metadata"] = get_dict(body, "metadata")
        if "banned" in body:
            if not isinstance(body["banned"], bool):
                raise BadRequest("field 'banned' must be a boolean", {"field": "banned"})
            changes["banned"] = body["banned"]
        return ok((await users.update_user(who.principal, uid, changes)).to_json())

    async def issue_token(request: Request) -> Response:
        await require_api_key(request, users)
        uid = path_ident(request, "uid")
        body = await read_json(request, settings.max_body_bytes)
        ttl = body.get("ttl")
        if ttl is not None and (
            not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= 365 * 86400
        ):
            raise BadRequest("field 'ttl' must be seconds in 1..31536000", {"field": "ttl"})
        token, exp = await users.issue_token(uid, ttl)
        return ok({"token": token, "expiresAt": exp, "uid": uid}, 201)

    async def export_user(request: Request) -> Response:
        await require_api_key(request, users)
        return ok(await accounts.export_user(path_ident(request, "uid")))

    async def blocked(request: Request) -> Response:
        _, user = await require_user(request, users)
        if request.method == "GET":
            return ok({"uids": await blocks.blocked_users(user.uid)})
        body = await read_json(request, settings.max_body_bytes)
        uids = body.get("uids")
        if not isinstance(uids, list) or not uids or not all(isinstance(u, str) for u in uids):
            raise BadRequest("field 'uids' must be a non-empty list of uids", {"field": "uids"})
        return ok({"uids": await blocks.block(user.uid, uids)})

    async def unblock(request: Request) -> Response:
        _, user = await require_user(request, users)
        return ok({"uids": await blocks.unblock(user.uid, path_ident(request, "uid"))})

    return [
        Route("/users", create_user, methods=["POST"]),
        Route("/users/{uid}", user_item, methods=["GET", "PATCH", "DELETE"]),
        Route("/users/{uid}/tokens", issue_token, methods=["POST"]),
        Route("/users/{uid}/export", export_user, methods=["GET"]),
        Route("/me/blocked-users", blocked, methods=["GET", "POST"]),
        Route("/me/blocked-users/{uid}", unblock, methods=["DELETE"]),
    ]
