"""Operator sign-in and accounts (issue 17): the dashboard's login, logout, session, TOTP
enrolment, and the admins' operator management.

The session token travels only in the ``__Host-parley_staff`` cookie (HttpOnly, Secure,
SameSite=Strict, path ``/``); response bodies carry the CSRF token the page must echo in
``X-CSRF-Token`` on unsafe requests (checked by ``server/staff_sessions.py``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from server.demo import DEMO_OPERATORS, DEMO_PASSWORD
from server.errors import AuthInvalid, AuthRequired, Forbidden, NotFound
from server.oidc import FLOW_TTL, OidcClient
from server.operator_auth import SESSION_COOKIE
from server.routes.common import Deps, ok, read_json, require_admin, staff_session
from server.services.operators import LoginResult, StaffSession
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


OIDC_COOKIE = "__Host-parley_oidc"


def routes(deps: Deps, oidc: OidcClient | None = None) -> list[Route]:
    users, ops, settings = deps.users, deps.operators, deps.settings
    limit = settings.max_body_bytes

    def session_response(result: LoginResult, response: Response) -> Response:
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

    async def login(request: Request) -> Response:
        if not same_origin(request.headers):
            raise Forbidden("sign in from this server's own dashboard")
        body = await read_json(request, limit)
        client = request.client.host if request.client else "?"
        result = await ops.login(
            body.get("name"), body.get("password"), body.get("code"), client=client
        )
        return session_response(
            result,
            JSONResponse(
                {
                    "operator": result.operator.to_json(),
                    "csrfToken": result.csrf,
                    "expiresAt": result.expires_at,
                }
            ),
        )

    def redirect_uri(request: Request) -> str:
        return settings.oidc_redirect_url or str(request.url_for("oidc_callback"))

    async def oidc_start(request: Request) -> Response:
        if oidc is None:
            raise NotFound("OpenID Connect sign-in is not configured")
        url, flow = await oidc.begin(redirect_uri(request))
        response = RedirectResponse(url, status_code=302)
        # Lax, not Strict: the identity provider's redirect back is a cross-site navigation.
        response.set_cookie(
            OIDC_COOKIE,
            flow,
            max_age=FLOW_TTL,
            path="/",
            secure=True,
            httponly=True,
            samesite="lax",
        )
        return response

    async def oidc_callback(request: Request) -> Response:
        if oidc is None:
            raise NotFound("OpenID Connect sign-in is not configured")
        params = request.query_params
        if params.get("error"):
            raise AuthInvalid(f"the identity provider refused: {params.get('error')}")
        claims = await oidc.finish(
            request.cookies.get(OIDC_COOKIE), params.get("code"), params.get("state")
        )
        name = claims.get(oidc.config.name_claim)
        if not isinstance(name, str):
            raise AuthInvalid(f"the ID token has no {oidc.config.name_claim!r} claim")
        client = request.client.host if request.client else "?"
        result = await ops.login_external(
            name,
            method="oidc",
            details={"client": client, "issuer": oidc.config.issuer, "sub": claims.get("sub")},
        )
        response = session_response(result, RedirectResponse("/dashboard", status_code=302))
        response.delete_cookie(OIDC_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
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
        return ok(
            {
                "demo": settings.demo,
                "demoAccounts": demo if settings.demo else [],
                "oidc": oidc is not None,
            }
        )

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
        Route("/operators/oidc/start", oidc_start, methods=["GET"]),
        Route("/operators/oidc/callback", oidc_callback, methods=["GET"], name="oidc_callback"),
        Route("/operators/logout", logout, methods=["POST"]),
        Route("/operators/me", me, methods=["GET"]),
        Route("/operators/me/totp", totp_begin, methods=["POST"]),
        Route("/operators/me/totp/confirm", totp_confirm, methods=["POST"]),
        Route("/operators", collection, methods=["GET", "POST"]),
        Route("/operators/{name}", item, methods=["GET", "PATCH"]),
        Route("/operators/{name}/password", password, methods=["POST"]),
    ]
