"""OpenID Connect sign-in for operators (issue 17) against a real identity provider on
loopback: a Starlette peer serving discovery, a JWKS and a token endpoint that checks the
PKCE verifier and the client secret, and signs ID tokens with its own RSA key. The browser's
part (following the redirects, carrying the cookies) is played by the test."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.responses import JSONResponse, Response

from tests.conftest import ServerProcess, free_port
from tests.e2e.peer import Peer, Recorded
from tests.e2e.test_operators import add_operator, api_key

CLIENT_ID, CLIENT_SECRET = "parley-dashboard", "s3cret-of-the-client"


class IdentityProvider:
    """The peer's handler: discovery, JWKS and the token endpoint of one issuer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "k-" + uuid.uuid4().hex[:6]
        self.codes: dict[str, dict[str, Any]] = {}  # code -> what the token should say
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] = lambda claims: claims
        self.signing_key: Any = self.key

    def authorize(self, authorize_url: str, username: str) -> tuple[str, dict[str, str]]:
        """What the provider does when the user signs in there: a code for the callback."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
        code = "code-" + uuid.uuid4().hex[:8]
        self.codes[code] = {**q, "username": username}
        return code, q

    async def __call__(self, request: Recorded) -> Response:
        if request.path == "/.well-known/openid-configuration":
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": self.url + "/authorize",
                    "token_endpoint": self.url + "/token",
                    "jwks_uri": self.url + "/jwks",
                }
            )
        if request.path == "/jwks":
            public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
            return JSONResponse({"keys": [{**public, "kid": self.kid, "use": "sig"}]})
        if request.path == "/token":
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            digest = hashlib.sha256(form["code_verifier"].encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                challenge != grant["code_challenge"]
                or form["redirect_uri"] != grant["redirect_uri"]
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = self.tamper(
                {
                    "iss": self.url,
                    "aud": CLIENT_ID,
                    "sub": "sub-" + grant["username"],
                    "preferred_username": grant["username"],
                    "nonce": grant["nonce"],
                    "iat": now,
                    "exp": now + 300,
                }
            )
            token = jwt.encode(
                claims, self.signing_key, algorithm="RS256", headers={"kid": self.kid}
            )
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": token})
        return JSONResponse({"error": "not found"}, status_code=404)


def cookie(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header.split(";")[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


async def sign_in(
    server: ServerProcess, idp: IdentityProvider, username: str, *, state: str | None = None
) -> httpx.Response:
    """The browser's part: start, sign in at the provider, come back to the callback."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        start = await http.get("/api/v1/operators/oidc/start")
        assert start.status_code == 302
        flow = cookie(start, "__Host-parley_oidc")
        assert "samesite=lax" in start.headers["set-cookie"].lower()
        code, q = idp.authorize(start.headers["location"], username)
        assert q["client_id"] == CLIENT_ID and q["code_challenge_method"] == "S256"
        return await http.get(
            "/api/v1/operators/oidc/callback",
            params={"code": code, "state": state or q["state"]},
            headers={"cookie": f"__Host-parley_oidc={flow}"},
        )


@pytest.fixture(scope="module")
async def sso() -> Any:
    port = free_port()
    idp = IdentityProvider(f"http://127.0.0.1:{port}")
    async with Peer(idp, port=port):
        yield idp


@pytest.fixture(scope="module")
def sso_server(server_factory: type[ServerProcess], sso: IdentityProvider) -> ServerProcess:
    return server_factory(  # type: ignore[call-arg]
        env={
            "PARLEY_OIDC_ISSUER": sso.url,
            "PARLEY_OIDC_CLIENT_ID": CLIENT_ID,
            "PARLEY_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
    )


async def test_an_operator_signs_in_through_the_identity_provider(
    sso_server: ServerProcess, sso: IdentityProvider
) -> None:
    name = await add_operator(sso_server, "moderator")
    async with httpx.AsyncClient(base_url=sso_server.url) as http:
        options = (await http.get("/api/v1/operators/login-options")).json()
    assert options["oidc"] is True
    done = await sign_in(sso_server, sso, name)
    assert done.status_code == 302 and done.headers["location"] == "/dashboard"
    session = cookie(done, "__Host-parley_staff")
    async with httpx.AsyncClient(base_url=sso_server.url + "/api/v1") as http:
        me = await http.get("/operators/me", headers={"cookie": f"__Host-parley_staff={session}"})
        assert me.status_code == 200 and me.json()["operator"]["name"] == name
        entries = (await http.get("/audit", headers=api_key(sso_server))).json()["entries"]
    login = [e for e in entries if e["action"] == "operator.login" and e["target"] == name]
    assert login[-1]["details"]["method"] == "oidc"
    assert login[-1]["details"]["sub"] == f"sub-{name}"


@pytest.mark.parametrize(
    "attack",
    ["forged state", "wrong nonce", "wrong audience", "wrong key", "unknown operator"],
)
async def test_a_sign_in_that_does_not_verify_opens_no_session(
    sso_server: ServerProcess, sso: IdentityProvider, attack: str
) -> None:
    name = await add_operator(sso_server, "viewer")
    state = None
    if attack == "forged state":
        state = "not-the-state"
    elif attack == "wrong nonce":
        sso.tamper = lambda c: {**c, "nonce": "replayed"}
    elif attack == "wrong audience":
        sso.tamper = lambda c: {**c, "aud": "another-app"}
    elif attack == "wrong key":
        sso.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif attack == "unknown operator":
        name = "nobody-" + uuid.uuid4().hex[:6]
    try:
        done = await sign_in(sso_server, sso, name, state=state)
    finally:
        sso.tamper = lambda c: c
        sso.signing_key = sso.key
    assert done.status_code in (401, 403), done.text
    assert not any(
        h.startswith("__Host-parley_staff=") for h in done.headers.get_list("set-cookie")
    )


async def test_without_an_issuer_there_is_no_sso(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url + "/api/v1") as http:
        assert (await http.get("/operators/login-options")).json()["oidc"] is False
        assert (await http.get("/operators/oidc/start")).status_code == 404
