"""The moderation settings models: one validator each, stored and shown shapes, masking."""

from __future__ import annotations

from typing import Any

import pytest

from server.errors import BadRequest
from server.moderation_settings import CustomApiSettings, ModerationSettings
from server.settings_fields import MASK
from server.webhook_settings import EVENTS, WebhookSettings


def test_custom_api_secret_masked_and_kept() -> None:
    stored = CustomApiSettings.parse({"url": "https://h.example", "secret": "s"}, None)
    assert stored is not None and stored.secret == "s"
    shown = stored.public_json()
    assert shown["secret"] == MASK
    again = CustomApiSettings.parse(shown, stored)
    assert again is not None and again.secret == "s"


def test_stored_round_trip() -> None:
    body = {
        "contextWindow": 3,
        "timeoutMs": 900,
        "customApi": {"url": "http://x", "secret": "s", "maxConcurrency": 2},
        "openai": {"model": " m ", "actionOnError": "block"},
        "webhooks": [{"url": "http://h", "events": ["*"]}],
    }
    settings = ModerationSettings().updated(body)
    assert settings.openai is not None and settings.openai.model == "m"
    assert ModerationSettings.from_json(settings.to_json()) == settings
    shown = settings.public_json(openai_key=False)
    assert shown["customApi"]["secret"] == MASK and shown["openaiApiKeyConfigured"] is False
    assert "s" not in [shown["customApi"]["secret"], shown["webhooks"][0]["secret"]]


def test_unnamed_fields_keep_their_values_and_null_removes() -> None:
    settings = ModerationSettings().updated({"customApi": {"url": "http://x"}, "timeoutMs": 100})
    kept = settings.updated({"contextWindow": 1})
    assert kept.custom_api == settings.custom_api and kept.timeout_ms == 100
    assert kept.updated({"customApi": None}).custom_api is None
    assert kept.updated({"webhooks": None}).to_json()["webhooks"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"contextWindow": 11},
        {"contextWindow": True},
        {"actionOnError": "deny"},
        {"timeoutMs": 10},
        {"customApi": "x"},
        {"customApi": {"url": "ftp://x"}},
        {"customApi": {"url": "http://x", "actionOnError": "maybe"}},
        {"customApi": {"url": "http://x", "nope": 1}},
        {"customApi": {"url": "http://x", "contextWindow": 11}},
        {"customApi": {"url": "http://x", "secret": 5}},
        {"openai": {"apiKey": "sk"}},
        {"openai": {"baseUrl": "localhost:1234"}},
        {"openai": {"model": ""}},
        {"openai": {"timeoutMs": 10}},
        {"openai": {"actionOnError": "deny"}},
        {"openai": {"contextWindow": 1}},
        {"openai": {"what": 1}},
        {"aiCascade": "true"},
        {"aiCascade": 1},
        {"aiCascade": None},
    ],
)
def test_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        ModerationSettings().updated(body)


def test_webhook_defaults_ids_and_masked_secret_kept() -> None:
    stored = WebhookSettings.parse_all([{"url": "https://a.example/x", "secret": "s1"}], ())
    assert stored[0].id.startswith("wh-") and stored[0].events == EVENTS
    assert stored[0].max_attempts == 8 and stored[0].enabled is True
    shown = [h.public_json() for h in stored]
    assert shown[0]["secret"] == MASK
    again = WebhookSettings.parse_all(shown, stored)
    assert again[0].secret == "s1"
    assert again[0].subscribed == frozenset(EVENTS) and again[0].timeout == 5.0


def test_backoff_doubles_up_to_the_cap() -> None:
    body = [{"url": "http://x", "backoffMs": 100, "maxBackoffMs": 500, "events": ["*"]}]
    (hook,) = WebhookSettings.parse_all(body, ())
    assert [hook.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


@pytest.mark.parametrize(
    "body",
    [
        "x",
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
def test_webhooks_rejected(body: Any) -> None:
    with pytest.raises(BadRequest):
        WebhookSettings.parse_all(body, ())


def test_ai_cascade_off_unless_set_and_kept_by_later_writes() -> None:
    assert ModerationSettings().cascade is False
    assert ModerationSettings().public_json(openai_key=False)["aiCascade"] is False
    on = ModerationSettings().updated({"aiCascade": True})
    assert on.cascade and on.to_json() == {"aiCascade": True}
    assert ModerationSettings.from_json(on.to_json()) == on
    assert on.updated({"contextWindow": 2}).cascade  # a write that does not name it keeps it
    assert not on.updated({"aiCascade": False}).cascade
