"""The server side of external moderation providers: the OpenAI key, settings validation,
and building (or keeping) provider detectors from the stored moderation settings.

Settings shapes (``PUT /moderation/settings``; see docs/moderation.md):

- ``customApi``: ``{url, secret, contextWindow, timeoutMs, actionOnError, maxConcurrency,
  breakerFailures, breakerResetMs}``
- ``openai``: ``{baseUrl, model, moderationModel, timeoutMs, actionOnError, maxConcurrency,
  breakerFailures, breakerResetMs}``; the API key never goes through the API.

Top-level ``timeoutMs``, ``actionOnError`` and ``contextWindow`` are the defaults for both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moderation.detectors.base import Detector
from moderation.providers.guard import GuardConfig, OnError, Reporter
from moderation.providers.openai import (
    DEFAULT_MODEL,
    DEFAULT_MODERATION_MODEL,
    OpenAIConfig,
    OpenAIProvider,
)
from moderation.providers.webhook import CustomApiConfig, CustomApiProvider, MessageResolver
from server.errors import BadRequest

log = logging.getLogger(__name__)

PROVIDER_KINDS = ("custom_api", "openai")
OPENAI_KEY_ENV = ("PARLEY_OPENAI_API_KEY", "OPENAI_API_KEY")
#: The secrets file in the data dir holding the OpenAI API key (one line, mode 0600).
OPENAI_KEY_FILE = "openai.key"
MASK = "********"
DEFAULT_TIMEOUT_MS = 5000
_LIMITS: dict[str, tuple[int, int]] = {
    "timeoutMs": (50, 60_000),
    "maxConcurrency": (1, 1000),
    "breakerFailures": (1, 1000),
    "breakerResetMs": (100, 3_600_000),
    "contextWindow": (0, 10),
}


def load_openai_key(data_dir: Path, env: Mapping[str, str]) -> str | None:
    """The OpenAI API key: ``PARLEY_OPENAI_API_KEY``, ``OPENAI_API_KEY``, or ``openai.key``."""
    for name in OPENAI_KEY_ENV:
        value = env.get(name, "").strip()
        if value:
            return value
    path = data_dir / OPENAI_KEY_FILE
    if path.is_file():
        value = path.read_text(encoding="utf-8").strip()
        return value or None
    return None


# --------------------------------------------------------------------- validation


def _int_field(obj: Mapping[str, Any], key: str, prefix: str) -> int:
    value = obj[key]
    lo, hi = _LIMITS[key]
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise BadRequest(
            f"field '{prefix}{key}' must be an integer in {lo}..{hi}", {"field": prefix + key}
        )
    return value


def _url(value: object, path: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise BadRequest(f"field '{path}' must be an http(s) URL", {"field": path})
    return value


def _common(obj: Mapping[str, Any], prefix: str, known: tuple[str, ...]) -> dict[str, Any]:
    for key in obj:
        if key not in known:
            raise BadRequest(f"unknown field '{prefix}{key}'", {"field": prefix + key})
    out: dict[str, Any] = {}
    for key in _LIMITS:
        if key in obj and key in known:
            out[key] = _int_field(obj, key, prefix)
    if "actionOnError" in obj:
        if obj["actionOnError"] not in ("allow", "block"):
            raise BadRequest(
                f"field '{prefix}actionOnError' must be allow or block",
                {"field": prefix + "actionOnError"},
            )
        out["actionOnError"] = obj["actionOnError"]
    return out


_LIMIT_KEYS = ("timeoutMs", "actionOnError", "maxConcurrency", "breakerFailures", "breakerResetMs")


def validate_custom_api(value: object, current: object) -> dict[str, Any] | None:
    """The stored ``customApi`` object for a PUT body; a masked or absent secret keeps the old."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("field 'customApi' must be an object or null", {"field": "customApi"})
    old = current if isinstance(current, dict) else {}
    out = _common(value, "customApi.", ("url", "secret", "contextWindow", *_LIMIT_KEYS))
    out["url"] = _url(value.get("url"), "customApi.url", required=True)
    secret = value.get("secret")
    if secret in (None, "", MASK):
        secret = old.get("secret")
    if secret is not None and not isinstance(secret, str):
        raise BadRequest("field 'customApi.secret' must be a string", {"field": "customApi.secret"})
    out["secret"] = secret
    return out


def validate_openai(value: object) -> dict[str, Any] | None:
    """The stored ``openai`` object for a PUT body (never an API key)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("field 'openai' must be an object or null", {"field": "openai"})
    if "apiKey" in value:
        raise BadRequest(
            "the OpenAI API key is read from PARLEY_OPENAI_API_KEY / OPENAI_API_KEY or the"
            f" data dir file {OPENAI_KEY_FILE}, never through the API",
            {"field": "openai.apiKey"},
        )
    out = _common(value, "openai.", ("baseUrl", "model", "moderationModel", *_LIMIT_KEYS))
    if value.get("baseUrl") is not None:
        out["baseUrl"] = _url(value["baseUrl"], "openai.baseUrl", required=True)
    for key in ("model", "moderationModel"):
        if value.get(key) is not None:
            if not isinstance(value[key], str) or not value[key].strip():
                raise BadRequest(
                    f"field 'openai.{key}' must be a non-empty string", {"field": f"openai.{key}"}
                )
            out[key] = value[key].strip()
    return out


def public_custom_api(value: object) -> object:
    """``customApi`` with its secret masked."""
    if isinstance(value, dict) and value.get("secret"):
        return {**value, "secret": MASK}
    return value


# --------------------------------------------------------------------- building


def _guard(obj: Mapping[str, Any], defaults: Mapping[str, Any]) -> GuardConfig:
    def pick(key: str, fallback: int) -> int:
        value = obj.get(key, defaults.get(key, fallback))
        return value if isinstance(value, int) else fallback

    return GuardConfig(
        timeout=pick("timeoutMs", DEFAULT_TIMEOUT_MS) / 1000,
        max_concurrency=pick("maxConcurrency", 8),
        breaker_failures=pick("breakerFailures", 5),
        breaker_reset=pick("breakerResetMs", 30_000) / 1000,
    )


def _on_error(obj: Mapping[str, Any], defaults: Mapping[str, Any]) -> OnError:
    return OnError(str(obj.get("actionOnError", defaults.get("actionOnError", "allow"))))


class Providers:
    """Builds provider detectors from settings; keeps a provider while its config is unchanged
    (so its breaker state and connections survive rule edits)."""

    def __init__(
        self,
        *,
        report: Reporter,
        resolve: MessageResolver,
        openai_key: str | None,
        openai_base_url: str | None = None,
        openai_model: str | None = None,
        openai_moderation_model: str | None = None,
        context_window: int = 5,
    ) -> None:
        self._report = report
        self._resolve = resolve
        self._key = openai_key
        self._base_url = openai_base_url or None
        self._model = openai_model or DEFAULT_MODEL
        self._moderation_model = openai_moderation_model or DEFAULT_MODERATION_MODEL
        self._context_window = context_window
        self.custom_api: CustomApiProvider | None = None
        self.openai: OpenAIProvider | None = None
        self._retired: list[CustomApiProvider | OpenAIProvider] = []

    @property
    def openai_available(self) -> bool:
        """Whether an OpenAI API key is configured."""
        return self._key is not None

    def custom_api_window(self, settings: Mapping[str, Any]) -> int | None:
        """The context window of Custom API conditions without their own, or None if unset."""
        api = settings.get("customApi")
        if not isinstance(api, dict):
            return None
        value = api.get("contextWindow", settings.get("contextWindow", self._context_window))
        return value if isinstance(value, int) else self._context_window

    def configure(self, settings: Mapping[str, Any]) -> dict[str, Detector]:
        """The provider detectors for these settings, keyed by condition kind."""
        out: dict[str, Detector] = {}
        api = settings.get("customApi")
        if isinstance(api, dict) and isinstance(api.get("url"), str):
            config = CustomApiConfig(
                url=api["url"],
                secret=api.get("secret") or None,
                context_window=self.custom_api_window(settings) or 0,
                on_error=_on_error(api, settings),
                guard=_guard(api, settings),
            )
            if self.custom_api is None or self.custom_api.config != config:
                self._retire(self.custom_api)
                self.custom_api = CustomApiProvider(
                    config, report=self._report, resolve=self._resolve
                )
            out["custom_api"] = self.custom_api
        else:
            self._retire(self.custom_api)
            self.custom_api = None
        if self._key is not None:
            raw = settings.get("openai")
            oa: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
            oconfig = OpenAIConfig(
                api_key=self._key,
                base_url=oa.get("baseUrl") or self._base_url,
                model=oa.get("model") or self._model,
                moderation_model=oa.get("moderationModel") or self._moderation_model,
                on_error=_on_error(oa, settings),
                guard=_guard(oa, settings),
            )
            if self.openai is None or self.openai.config != oconfig:
                self._retire(self.openai)
                self.openai = OpenAIProvider(oconfig, report=self._report)
            out["openai"] = self.openai
        return out

    def _retire(self, provider: CustomApiProvider | OpenAIProvider | None) -> None:
        # Engines built before a settings change may still use it; it is closed at shutdown.
        if provider is not None:
            self._retired.append(provider)

    async def aclose(self) -> None:
        """Close every provider's connections (at shutdown)."""
        for provider in (*self._retired, self.custom_api, self.openai):
            if provider is not None:
                try:
                    await provider.aclose()
                except Exception:
                    log.exception("closing provider %s failed", provider.name)
        self._retired.clear()
