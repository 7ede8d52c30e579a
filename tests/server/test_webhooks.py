"""Validation of the ``webhooks`` setting and the back-off schedule."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import BadRequest
from server.webhooks import EVENTS, MASK, hooks_of, public_webhooks, validate_webhooks


def test_defaults_ids_and_masked_secret_kept() -> None:
    stored = validate_webhooks([{"url": "https://a.example/x", "secret": "s1"}], [])
    assert stored[0]["id"].startswith("wh-") and stored[0]["events"] == list(EVENTS)
    assert stored[0]["maxAttempts"] == 8 and stored[0]["enabled"] is True
    shown = public_webhooks(stored)
    assert isinstance(shown, list) and shown[0]["secret"] == MASK
    again = validate_webhooks(shown, stored)
    assert again[0]["secret"] == "s1"
    hook = hooks_of(again)[stored[0]["id"]]
    assert hook.events == frozenset(EVENTS) and hook.timeout == 5.0


def test_backoff_doubles_up_to_the_cap() -> None:
    body = [{"url": "http://x", "backoffMs": 100, "maxBackoffMs": 500, "events": ["*"]}]
    hook = next(iter(hooks_of(validate_webhooks(body, [])).values()))
    assert [hook.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.parametrize(
    "body",
    [
        {"webhooks": "x"},
        [{"url": "ftp://x"}],
        [{"url": "http://x", "events": ["message.nope"]}],
        [{"url": "http://x", "events": []}],
        [{"url": "http://x", "maxAttempts": 0}],
        [{"url": "http://x", "timeoutMs": True}],
        [{"url": "http://x", "surprise": 1}],
        [{"url": "http://x", "id": "a"}, {"url": "http://y", "id": "a"}],
        [{"url": "http://x", "enabled": "yes"}],
    ],
)
def test_rejects(body: Any) -> None:
    with pytest.raises(BadRequest):
        validate_webhooks(body, [])
