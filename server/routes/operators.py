"""Operator sign-in and accounts (issue 17): the dashboard's login, logout, session, TOTP
enrolment, and the admins' operator management.

The session token travels only in the ``__Host-parley_staff`` cookie (HttpOnly, Secure,
SameSite=Strict, path ``/``); response bodies carry the CSRF token the page must echo in
``X-CSRF-Token`` on unsafe requests (checked by ``server/staff_sessions.py``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.demo import DEMO_OPERATORS, DEMO_PASSWORD
from server.errors import AuthRequired, Forbidden
from server.operator_auth import SESSION_COOKIE
from server.routes.common import Deps, ok, read_json, require_admin, staff_session
from server.services.operators import StaffSession
from server.staff_sessions import same_origin


def _me(session: StaffSession) -> dict[str, object]:
    return {
        "operator": session.operator.to_json(),
        "csrfToken": session.csrf,
        "expiresAt": session.expires_at,
    }


def _session(request: Request) -> StaffSession:
    found = staff_session(request)
    if found is None:
        raise AuthRequired("sign in to the dashboard first")
    return found


def routes(deps: Deps) -> list[Route]:
    users, ops, settings = deps.users, deps.operators, deps.settings
    limit = settings.max_body_bytes

    async def login(request: Request) -> Response:
        if not same_origin(request.headers):
            raise Forbidden("sign in from this server's own dashboard")
        body = await read_json(request, limit)
        client = request.client.host if request.client else "?"
        result = await ops.login(
            body.get("name"), body.get("password"), body.get("code"), client=client
        )
        response = JSONResponse(
            {
                "operator": result.operator.to_json(),
                "csrfToken": result.csrf,
                "expiresAt": result.expires_at,
            }
        )
        response.set_cookie(
            SESSION_COOKIE,
            result.token,
            max_age=settings.operator_session_ttl,
            path="/",
            secure=True,
            httponly=True,
            samesite="strict",
        )
        return response

    async def logout(request: Request) -> Response:
        await ops.logout(_session(request))
        response = Response(status_code=204)
        response.delete_cookie(
            SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="strict"
        )
        return response

    async def me(request: Request) -> Response:
        return ok(_me(_session(request)))

    async def totp_begin(request: Request) -> Response:
        enrolment = await ops.begin_totp(_session(request))
        return ok({"secret": enrolment.secret, "uri": enrolment.uri})

    async def totp_confirm(request: Request) -> Response:
        session = _session(request)
        body = await read_json(request, limit)
        return ok({"recoveryCodes": await ops.confirm_totp(session, body.get("code"))})

    async def options(request: Request) -> Response:
        demo = [
            {"name": name, "role": role, "password": DEMO_PASSWORD} for name, role in DEMO_OPERATORS
        ]
        return ok({"demo": settings.demo, "demoAccounts": demo if settings.demo else []})

    async def collection(request: Request) -> Response:
        who = await require_admin(request, users, "only admins manage operators")
        if request.method == "GET":
            return ok({"operators": [o.to_json() for o in await ops.operators()]})
        body = await read_json(request, limit)
        created = await ops.add(
            who.actor, body.get("name"), body.get("role"), body.get("password"), body.get("groups")
        )
        return ok(created.to_json(), 201)

    async def item(request: Request) -> Response:
        who = await require_admin(request, users, "only admins manage operators")
        name = request.path_params["name"]
        if request.method == "GET":
            return ok((await ops.get(name)).to_json())
        body = await read_json(request, limit)
        return ok((await ops.update(who.actor, name, body)).to_json())

    async def password(request: Request) -> Response:
        who = await require_admin(request, users, "only admins set other operators' passwords")
        body = await read_json(request, limit)
        await ops.set_password(who.actor, request.path_params["name"], body.get("password"))
        return Response(status_code=204)

    return [
        Route("/operators/login", login, methods=["POST"]),
        Route("/operators/login-options", options, methods=["GET"]),
        Route("/operators/logout", logout, methods=["POST"]),
        Route("/operators/me", me, methods=["GET"]),
        Route("/operators/me/totp", totp_begin, methods=["POST"]),
        Route("/operators/me/totp/confirm", totp_confirm, methods=["POST"]),
        Route("/operators", collection, methods=["GET", "POST"]),
        Route("/operators/{name}", item, methods=["GET", "PATCH"]),
        Route("/operators/{name}/password", password, methods=["POST"]),
    ]
