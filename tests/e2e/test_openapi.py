"""``/api/v1/openapi.json`` as served, and a schema-driven fuzz run over it (schemathesis):
whatever the generated input, the server answers without a 500 and keeps running."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from server import __version__
from server.openapi import document
from tests.conftest import ServerProcess, unique

DOC = document(__version__)


@pytest.fixture(scope="module")
def fuzz_server(server_factory: Any) -> ServerProcess:
    """A server of its own: the fuzz run creates, changes and deletes at random."""
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture(scope="module")
def user_token(fuzz_server: ServerProcess) -> str:
    headers = {"X-API-Key": fuzz_server.api_key}
    uid = unique("fuzz")
    base = fuzz_server.url + "/api/v1"
    httpx.post(f"{base}/users", json={"uid": uid, "name": uid}, headers=headers).raise_for_status()
    r = httpx.post(f"{base}/users/{uid}/tokens", json={}, headers=headers)
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.fixture(scope="module")
def credentials(fuzz_server: ServerProcess, user_token: str) -> Callable[[Any], dict[str, str]]:
    """The headers an operation's security asks for: a user token where only a user may
    call, the API key elsewhere, nothing for signed media links."""

    def pick(case: Any) -> dict[str, str]:
        security = DOC["paths"][case.path][case.method.lower()]["security"]
        if not security:
            return {}
        if security == [{"bearer": []}]:
            return {"Authorization": f"Bearer {user_token}"}
        return {"X-API-Key": fuzz_server.api_key}

    return pick


@pytest.fixture(scope="module")
def api_schema(fuzz_server: ServerProcess) -> Any:
    return schemathesis.openapi.from_url(fuzz_server.url + "/api/v1/openapi.json")


def test_the_served_document_is_the_description(fuzz_server: ServerProcess) -> None:
    r = httpx.get(fuzz_server.url + "/api/v1/openapi.json")  # no credentials needed
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == DOC


OPERATIONS = sorted(
    (path, method) for path, item in DOC["paths"].items() for method in item if method != "head"
)
#: Operations with input to break (parameters or a body); the others have no negative case.
WITH_INPUT = {
    (path, method)
    for path, method in OPERATIONS
    if DOC["paths"][path][method].get("parameters") or "requestBody" in DOC["paths"][path][method]
}


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [(p, m, GenerationMode.POSITIVE) for p, m in OPERATIONS]
    + [(p, m, GenerationMode.NEGATIVE) for p, m in OPERATIONS if (p, m) in WITH_INPUT],
)
def test_no_generated_request_makes_a_server_error(
    path: str,
    method: str,
    mode: GenerationMode,
    api_schema: Any,
    fuzz_server: ServerProcess,
    credentials: Callable[[Any], dict[str, str]],
) -> None:
    operation = api_schema[path][method.upper()]

    # Valid input per the schema, and input that breaks it (wrong types, missing fields,
    # out-of-range values): each must get a 2xx or a 4xx, never a 5xx.
    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def fuzz(case: Any) -> None:
        sent.append(case)
        case.call_and_validate(
            base_url=fuzz_server.url, headers=credentials(case), checks=[not_a_server_error]
        )

    sent: list[Any] = []
    fuzz()
    assert sent, "no request was generated"


def test_the_server_survived_the_fuzz_run(fuzz_server: ServerProcess) -> None:
    assert fuzz_server.proc is not None and fuzz_server.proc.poll() is None
    assert httpx.get(fuzz_server.url + "/healthz").status_code == 200
    assert fuzz_server.log_path is not None
    log = fuzz_server.log_path.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def test_what_the_fuzz_run_found_stays_fixed(fuzz_server: ServerProcess) -> None:
    # A dry run given a "rule" that is not an object answered 500 (TypeError) before.
    r = httpx.post(
        fuzz_server.url + "/api/v1/moderation/rules/profanity/dry-run",
        json={"days": 1, "rule": 5},
        headers={"X-API-Key": fuzz_server.api_key},
    )
    assert r.status_code == 400
    assert r.json()["details"] == {"field": "rule"}
