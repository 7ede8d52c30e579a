"""The OpenAI key lookup and building the external detectors from settings."""

from __future__ import annotations

from pathlib import Path

from moderation.providers.guard import OnError, ProviderCall
from moderation.providers.webhook import view_json
from moderation.types import MessageView
from server.external_detectors import ExternalDetectors, load_openai_key
from server.moderation_settings import ModerationSettings


def test_openai_key_sources(tmp_path: Path) -> None:
    assert load_openai_key(tmp_path, {}) is None
    (tmp_path / "openai.key").write_text("sk-file\n")
    assert load_openai_key(tmp_path, {}) == "sk-file"
    assert load_openai_key(tmp_path, {"OPENAI_API_KEY": "sk-env"}) == "sk-env"
    env = {"OPENAI_API_KEY": "sk-env", "PARLEY_OPENAI_API_KEY": "sk-parley"}
    assert load_openai_key(tmp_path, env) == "sk-parley"


async def _resolve(view: MessageView) -> dict[str, object]:
    return view_json(view)


async def test_configure_keeps_detectors_until_settings_change() -> None:
    calls: list[ProviderCall] = []
    external = ExternalDetectors(report=calls.append, resolve=_resolve, openai_key="sk-test")
    settings = ModerationSettings().updated(
        {
            "actionOnError": "block",
            "customApi": {"url": "http://127.0.0.1:9/x", "timeoutMs": 300},
            "openai": {"baseUrl": "http://127.0.0.1:9/v1"},
        }
    )
    first = external.configure(settings)
    assert set(first) == {"custom_api", "openai"}
    assert external.custom_api is not None
    assert external.custom_api.config.on_error is OnError.BLOCK
    assert external.custom_api.config.guard.timeout == 0.3
    again = external.configure(settings)
    assert again["custom_api"] is first["custom_api"] and again["openai"] is first["openai"]
    changed = external.configure(settings.updated({"customApi": {"url": "http://127.0.0.1:9/y"}}))
    assert changed["custom_api"] is not first["custom_api"]
    assert external.configure(ModerationSettings()).keys() == {"openai"}
    await external.aclose()


async def test_no_key_no_openai() -> None:
    external = ExternalDetectors(report=lambda c: None, resolve=_resolve, openai_key=None)
    assert not external.openai_available
    assert external.configure(ModerationSettings().updated({"openai": {"model": "m"}})) == {}
    await external.aclose()


def test_custom_api_window_falls_back_to_the_top_level_then_the_server() -> None:
    external = ExternalDetectors(report=lambda c: None, resolve=_resolve, openai_key=None)
    api = {"customApi": {"url": "http://x"}}
    assert external.custom_api_window(ModerationSettings()) is None
    assert external.custom_api_window(ModerationSettings().updated(api)) == 5
    top = ModerationSettings().updated({**api, "contextWindow": 2})
    assert external.custom_api_window(top) == 2
    own = top.updated({"customApi": {"url": "http://x", "contextWindow": 7}})
    assert external.custom_api_window(own) == 7
