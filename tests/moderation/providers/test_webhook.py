"""The Custom API provider against httpx.MockTransport (the e2e tests use a real server)."""

from __future__ import annotations

import json

import httpx
import pytest

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


def provider(handler: httpx.MockTransport, on_error: OnError = OnError.ALLOW) -> CustomApiProvider:
    config = CustomApiConfig(
        url="http://hook.test/x", secret="k", on_error=on_error, guard=GuardConfig(timeout=1)
    )
    return CustomApiProvider(config, transport=handler)


async def test_detect_signs_and_scores() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"isMatchingCondition": True, "confidence": 0.8, "reason": "r"}
        )

    p = provider(httpx.MockTransport(handle))
    found = await p.detect(build_message("x"), CONDITION, DetectContext())
    await p.aclose()
    assert [(d.category, d.confidence, d.reason) for d in found] == [
        ("custom_api", 0.8, "custom_api: r")
    ]
    request = seen[0]
    assert verify(
        "k",
        request.headers["x-parley-timestamp"],
        request.headers["x-parley-signature"],
        request.content,
    )


@pytest.mark.parametrize(
    ("response", "on_error", "expected"),
    [
        (httpx.Response(500), OnError.BLOCK, ["provider_error"]),
        (httpx.Response(500), OnError.ALLOW, []),
        (httpx.Response(200, content=b"garbage"), OnError.BLOCK, ["provider_error"]),
        (
            httpx.Response(302, headers={"location": "http://elsewhere"}),
            OnError.BLOCK,
            ["provider_error"],
        ),
        (httpx.Response(200, json={"isMatchingCondition": False}), OnError.BLOCK, ["custom_api"]),
    ],
)
async def test_detect_applies_action_on_error(
    response: httpx.Response, on_error: OnError, expected: list[str]
) -> None:
    p = provider(httpx.MockTransport(lambda request: response), on_error)
    found = await p.detect(build_message("x"), CONDITION, DetectContext())
    await p.aclose()
    assert [d.category for d in found] == expected


async def test_transport_error_is_a_provider_error() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    p = provider(httpx.MockTransport(handle), OnError.BLOCK)
    found = await p.detect(build_message("x"), CONDITION, DetectContext())
    await p.aclose()
    assert "custom_api error (transport)" in found[0].reason
