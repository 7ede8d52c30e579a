"""OpenID Connect sign-in for operators (issue 17): the authorization-code flow with PKCE
(S256), a ``state`` and a ``nonce``, against one issuer configured by the operator.

- ``OidcClient.begin`` makes the authorization URL and the flow's secrets (state, nonce, PKCE
  verifier), which travel in a short-lived signed cookie, never on the server.
- ``OidcClient.finish`` checks the state, exchanges the code at the token endpoint (client
  secret in HTTP Basic) and verifies the ID token: signature against the issuer's JWKS
  (RS256/ES256/PS256 only), ``iss``, ``aud`` = the client id, ``exp``/``iat``, and the
  ``nonce``. The result is the claims; which operator they name is the caller's business.

Discovery (``/.well-known/openid-configuration``) and the JWKS are fetched on first use and
cached; a token signed with a key id not in the cache refreshes the JWKS once (key rotation).
Every call has a timeout. Uses PyJWT and httpx, both already dependencies.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt

from server.errors import AuthInvalid, BadRequest

ALGORITHMS = ["RS256", "ES256", "PS256"]
FLOW_TTL = 600  # seconds a sign-in may take at the identity provider
_FLOW_AUDIENCE = "parley-oidc-flow"


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    name_claim: str = "preferred_username"
    scopes: str = "openid profile email"
    timeout: float = 10.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce_challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


class OidcClient:
    """One issuer's authorization-code flow (see the module docstring)."""

    def __init__(self, config: OidcConfig, *, flow_secret: str) -> None:
        self.config = config
        self._flow_secret = flow_secret
        self._discovery: dict[str, Any] | None = None
        self._keys: dict[str, jwt.PyJWK] = {}

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout) as http:
                response = await http.get(url)
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthInvalid(f"the identity provider did not answer: {exc}") from None
        if not isinstance(body, dict):
            raise AuthInvalid("the identity provider answered something unexpected")
        return body

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            found = await self._get(
                self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(key), str):
                    raise AuthInvalid(f"the identity provider's discovery lacks {key}")
            self._discovery = found
        return self._discovery

    async def begin(self, redirect_uri: str) -> tuple[str, str]:
        """The authorization URL and the signed flow cookie's value."""
        found = await self.discovery()
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.config.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        now = int(time.time())
        flow = jwt.encode(
            {
                "aud": _FLOW_AUDIENCE,
                "iat": now,
                "exp": now + FLOW_TTL,
                "state": state,
                "nonce": nonce,
                "verifier": verifier,
                "redirect_uri": redirect_uri,
            },
            self._flow_secret,
            algorithm="HS256",
        )
        return f"{found['authorization_endpoint']}?{query}", flow

    async def finish(
        self, flow_cookie: str | None, code: str | None, state: str | None
    ) -> dict[str, Any]:
        """The verified ID token's claims; AuthInvalid (or BadRequest) with the reason."""
        if not code or not state:
            raise BadRequest("the identity provider sent no code and state")
        if not flow_cookie:
            raise AuthInvalid("no sign-in in progress in this browser (or it took too long)")
        try:
            flow = jwt.decode(
                flow_cookie, self._flow_secret, algorithms=["HS256"], audience=_FLOW_AUDIENCE
            )
        except jwt.InvalidTokenError as exc:
            raise AuthInvalid(f"the sign-in expired or was tampered with: {exc}") from None
        if not secrets.compare_digest(str(flow.get("state")), state):
            raise AuthInvalid("the sign-in's state does not match (a forged or stale callback)")
        found = await self.discovery()
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout) as http:
                response = await http.post(
                    found["token_endpoint"],
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": flow["redirect_uri"],
                        "code_verifier": flow["verifier"],
                    },
                    auth=(self.config.client_id, self.config.client_secret),
                )
            tokens = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise AuthInvalid(f"the identity provider did not answer: {exc}") from None
        if response.status_code != 200 or not isinstance(tokens, dict):
            raise AuthInvalid(f"the identity provider refused the code ({response.status_code})")
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise AuthInvalid("the identity provider sent no ID token")
        claims = await self._verify(id_token)
        if not secrets.compare_digest(str(claims.get("nonce")), str(flow["nonce"])):
            raise AuthInvalid("the ID token's nonce does not match this sign-in")
        return claims

    async def _key(self, kid: str | None) -> jwt.PyJWK:
        if kid not in self._keys:
            found = await self.discovery()
            jwks = await self._get(found["jwks_uri"])
            keys: dict[str, jwt.PyJWK] = {}
            for raw in jwks.get("keys") or []:
                try:
                    keys[str(raw.get("kid"))] = jwt.PyJWK(raw)
                except (jwt.PyJWKError, AttributeError):
                    continue  # a key of a kind we do not use
            self._keys = keys
        key = self._keys.get(str(kid)) or (
            next(iter(self._keys.values())) if kid is None and len(self._keys) == 1 else None
        )
        if key is None:
            raise AuthInvalid("the ID token is signed with a key the issuer does not publish")
        return key

    async def _verify(self, id_token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(id_token)
        except jwt.InvalidTokenError as exc:
            raise AuthInvalid(f"not an ID token: {exc}") from None
        if header.get("alg") not in ALGORITHMS:
            raise AuthInvalid("the ID token's algorithm is not accepted")
        key = await self._key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.config.client_id,
                issuer=self.config.issuer,
                options={"require": ["iss", "aud", "exp", "iat", "sub"]},
                leeway=30,
            )
        except jwt.InvalidTokenError as exc:
            raise AuthInvalid(f"the ID token does not verify: {exc}") from None
        return claims
