"""The OpenAI key lookup, provider settings validation, and building providers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moderation.providers.guard import OnError, ProviderCall
from moderation.providers.webhook import view_json
from moderation.types import MessageView
from server.errors import BadRequest
from server.providers import (
    MASK,
    Providers,
    load_openai_key,
    public_custom_api,
    validate_custom_api,
    validate_openai,
)


def test_openai_key_sources(tmp_path: Path) -> None:
    assert load_openai_key(tmp_path, {}) is None
    (tmp_path / "openai.key").write_text("sk-file\n")
    assert load_openai_key(tmp_path, {}) == "sk-file"
    assert load_openai_key(tmp_path, {"OPENAI_API_KEY": "sk-env"}) == "sk-env"
    env = {"OPENAI_API_KEY": "sk-env", "PARLEY_OPENAI_API_KEY": "sk-parley"}
    assert load_openai_key(tmp_path, env) == "sk-parley"


def test_custom_api_secret_masked_and_kept() -> None:
    stored = validate_custom_api({"url": "https://h.example", "secret": "s"}, None)
    assert stored is not None and stored["secret"] == "s"
    shown = public_custom_api(stored)
    assert isinstance(shown, dict) and shown["secret"] == MASK
    assert (validate_custom_api(shown, stored) or {})["secret"] == "s"


@pytest.mark.parametrize(
    "body",
    [
        {"apiKey": "sk"},
        {"baseUrl": "localhost:1234"},
        {"model": ""},
        {"timeoutMs": 10},
        {"actionOnError": "deny"},
        {"what": 1},
    ],
)
def test_openai_settings_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        validate_openai(body)


async def _resolve(view: MessageView) -> dict[str, object]:
    return view_json(view)


async def test_configure_keeps_providers_until_settings_change() -> None:
    calls: list[ProviderCall] = []
    providers = Providers(report=calls.append, resolve=_resolve, openai_key="sk-test")
    settings: dict[str, Any] = {
        "actionOnError": "block",
        "customApi": {"url": "http://127.0.0.1:9/x", "timeoutMs": 300},
        "openai": {"baseUrl": "http://127.0.0.1:9/v1"},
    }
    first = providers.configure(settings)
    assert set(first) == {"custom_api", "openai"}
    assert providers.custom_api is not None
    assert providers.custom_api.config.on_error is OnError.BLOCK
    assert providers.custom_api.config.guard.timeout == 0.3
    again = providers.configure(settings)
    assert again["custom_api"] is first["custom_api"] and again["openai"] is first["openai"]
    changed = providers.configure({**settings, "customApi": {"url": "http://127.0.0.1:9/y"}})
    assert changed["custom_api"] is not first["custom_api"]
    assert providers.configure({}).keys() == {"openai"}
    await providers.aclose()


async def test_no_key_no_openai() -> None:
    providers = Providers(report=lambda c: None, resolve=_resolve, openai_key=None)
    assert not providers.openai_available
    assert providers.configure({"openai": {"model": "m"}}) == {}
    await providers.aclose()
