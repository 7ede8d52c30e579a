"""The Custom API provider against a real HTTP peer on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from starlette.responses import JSONResponse, Response

from moderation.detectors.base import DetectContext
from moderation.providers.guard import GuardConfig, OnError, ProviderError
from moderation.providers.signing import verify
from moderation.providers.webhook import (
    CustomApiConfig,
    CustomApiProvider,
    parse_answer,
    request_body,
    view_json,
)
from moderation.rules import Condition
from tests.conftest import free_port
from tests.e2e.peer import Handler, Peer, Recorded
from tests.moderation.conftest import build_message

CONDITION = Condition("custom_api", ("text",))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"isMatchingCondition": true, "confidence": 0.9, "reason": "x"}', (True, 0.9, "x")),
        (b'{"isMatchingCondition": false}', (False, 0.0, "")),
        (b'{"isMatchingCondition": true}', (True, 1.0, "")),
        (b'{"isMatchingCondition": true, "confidence": 1, "reason": null}', (True, 1.0, "")),
    ],
)
def test_parse_answer(raw: bytes, expected: tuple[bool, float, str]) -> None:
    assert parse_answer(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"nope",
        b"[]",
        b'{"confidence": 0.5}',
        b'{"isMatchingCondition": 1}',
        b'{"isMatchingCondition": true, "confidence": "high"}',
        b'{"isMatchingCondition": true, "confidence": true}',
        b'{"isMatchingCondition": true, "confidence": -0.1}',
        b'{"isMatchingCondition": true, "reason": 5}',
    ],
)
def test_parse_answer_rejects_wrong_shapes(raw: bytes) -> None:
    with pytest.raises(ProviderError) as info:
        parse_answer(raw)
    assert info.value.kind == "bad_response"


def test_request_body_puts_context_first_and_the_full_message_last() -> None:
    earlier = [build_message("hi", id=1, sender="bob"), build_message("yo", id=2)]
    message = build_message("now", id=3)
    body = json.loads(request_body(view_json(message), "alice", earlier))
    assert body["contextMessages"][:2] == [{"bob": "hi"}, {"alice": "yo"}]
    assert body["contextMessages"][2]["alice"]["text"] == "now"
    assert body["contextMessages"][2]["alice"]["id"] == 3


def provider(url: str, on_error: OnError = OnError.ALLOW) -> CustomApiProvider:
    config = CustomApiConfig(url=url, secret="k", on_error=on_error, guard=GuardConfig(timeout=1))
    return CustomApiProvider(config)


def answer(response: Response) -> Handler:
    async def handle(request: Recorded) -> Response:
        return response

    return handle


async def test_detect_signs_and_scores() -> None:
    async def handle(request: Recorded) -> Response:
        return JSONResponse({"isMatchingCondition": True, "confidence": 0.8, "reason": "r"})

    async with Peer(handle) as peer:
        p = provider(peer.url + "/x")
        found = await p.detect(build_message("x"), CONDITION, DetectContext())
        await p.aclose()
    assert [(d.category, d.confidence, d.reason) for d in found] == [
        ("custom_api", 0.8, "custom_api: r")
    ]
    request = peer.requests[0]
    assert (request.method, request.path) == ("POST", "/x")
    assert verify(
        "k",
        request.headers["x-parley-timestamp"],
        request.headers["x-parley-signature"],
        request.body,
    )


@pytest.mark.parametrize(
    ("response", "on_error", "expected"),
    [
        (Response(status_code=500), OnError.BLOCK, ["provider_error"]),
        (Response(status_code=500), OnError.ALLOW, []),
        (Response(b"garbage"), OnError.BLOCK, ["provider_error"]),
        (
            Response(status_code=302, headers={"location": "http://elsewhere"}),
            OnError.BLOCK,
            ["provider_error"],
        ),
        (JSONResponse({"isMatchingCondition": False}), OnError.BLOCK, ["custom_api"]),
    ],
)
async def test_detect_applies_action_on_error(
    response: Response, on_error: OnError, expected: list[str]
) -> None:
    async with Peer(answer(response)) as peer:
        p = provider(peer.url + "/x", on_error)
        found = await p.detect(build_message("x"), CONDITION, DetectContext())
        await p.aclose()
    assert [d.category for d in found] == expected


async def test_transport_error_is_a_provider_error() -> None:
    p = provider(f"http://127.0.0.1:{free_port()}/nobody-listens", OnError.BLOCK)
    found = await p.detect(build_message("x"), CONDITION, DetectContext())
    await p.aclose()
    assert "custom_api error (transport)" in found[0].reason
