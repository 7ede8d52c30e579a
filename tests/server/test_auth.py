from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from server.auth import Secrets, TokenAuthority
from server.errors import AuthInvalid

SECRET = "s" * 64
AUTH = TokenAuthority(Secrets("key", SECRET), audience="parley", issuer="parley", ttl=60)


def claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "sub": "alice",
        "iat": now,
        "exp": now + 60,
        "aud": "parley",
        "iss": "parley",
        "jti": "j",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_issue_and_verify() -> None:
    token, exp = AUTH.issue("alice", account="acc1")
    verified = AUTH.verify(token)
    assert (verified.uid, verified.account) == ("alice", "acc1")
    assert exp > time.time()


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(claims(), "wrong-secret-wrong-secret-wrong-secret!", algorithm="HS256"),
        jwt.encode(claims(exp=int(time.time()) - 100), SECRET, algorithm="HS256"),
        jwt.encode(claims(exp=None), SECRET, algorithm="HS256"),
        jwt.encode(claims(aud="other"), SECRET, algorithm="HS256"),
        jwt.encode(claims(iss="other"), SECRET, algorithm="HS256"),
        jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
        jwt.encode(claims(), SECRET, algorithm="HS512"),
        b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims()) + ".",
        jwt.encode(claims(exp=str(int(time.time()) + 60)), SECRET, algorithm="HS256"),
        jwt.encode(claims(exp=10**30), SECRET, algorithm="HS256"),
        jwt.encode(claims(iat=int(time.time()) + 3600), SECRET, algorithm="HS256"),
        "not-a-token",
        "",
    ],
    ids=[
        "forged",
        "expired",
        "no-exp",
        "wrong-aud",
        "wrong-iss",
        "no-sub",
        "other-alg",
        "alg-none",
        "string-exp",
        "huge-exp",
        "future-iat",
        "garbage",
        "empty",
    ],
)
def test_bad_tokens_are_refused(token: str) -> None:
    with pytest.raises(AuthInvalid):
        AUTH.verify(token)


def test_api_key_check() -> None:
    assert AUTH.check_api_key("key")
    assert not AUTH.check_api_key("kez")
