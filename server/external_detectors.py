"""The detectors that call out (the Custom API provider, OpenAI), built from the moderation
settings; the OpenAI key (env or data dir, never the database); the report of each call.

The detectors themselves live in ``moderation/providers/``; this module only decides which
exist and with what configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from moderation.detectors.base import Detector
from moderation.providers.guard import GuardConfig, OnError, ProviderCall, Reporter
from moderation.providers.openai import (
    DEFAULT_MODEL,
    DEFAULT_MODERATION_MODEL,
    OpenAIConfig,
    OpenAIProvider,
)
from moderation.providers.webhook import CustomApiConfig, CustomApiProvider, MessageResolver
from server.metrics import Metrics
from server.moderation_settings import OPENAI_KEY_FILE, GuardSettings, ModerationSettings
from server.services.contracts import EventSink

log = logging.getLogger(__name__)

#: The condition kinds these detectors serve.
EXTERNAL_KINDS = ("custom_api", "openai")
OPENAI_KEY_ENV = ("PARLEY_OPENAI_API_KEY", "OPENAI_API_KEY")
DEFAULT_TIMEOUT_MS = 5000


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


class ProviderCallReport:
    """A ``Reporter``: metrics for each provider call; a failure also becomes the
    ``moderation.provider_failed`` event."""

    def __init__(self, metrics: Metrics, events: EventSink) -> None:
        self._metrics = metrics
        self._events = events

    def __call__(self, call: ProviderCall) -> None:
        metrics = self._metrics
        metrics.provider_requests.labels(call.provider, call.error or "ok").inc()
        if call.error != "circuit_open":
            metrics.provider_latency.labels(call.provider).observe(call.seconds)
        if call.error is not None:
            metrics.provider_errors.labels(call.provider).inc()
            if call.error != "circuit_open":
                self._events.emit(
                    "moderation.provider_failed",
                    {
                        "provider": call.provider,
                        "error": call.error,
                        "detail": call.detail,
                        "messageId": call.message_id,
                    },
                )


def _guard(own: GuardSettings, defaults: GuardSettings) -> GuardConfig:
    def pick(mine: int | None, top: int | None, fallback: int) -> int:
        return mine if mine is not None else top if top is not None else fallback

    return GuardConfig(
        timeout=pick(own.timeout_ms, defaults.timeout_ms, DEFAULT_TIMEOUT_MS) / 1000,
        max_concurrency=pick(own.max_concurrency, defaults.max_concurrency, 8),
        breaker_failures=pick(own.breaker_failures, defaults.breaker_failures, 5),
        breaker_reset=pick(own.breaker_reset_ms, defaults.breaker_reset_ms, 30_000) / 1000,
    )


def _on_error(own: GuardSettings, defaults: GuardSettings) -> OnError:
    return OnError(own.action_on_error or defaults.action_on_error or "allow")


class ExternalDetectors:
    """Builds the external detectors from settings; keeps one while its config is unchanged
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

    def custom_api_window(self, settings: ModerationSettings) -> int | None:
        """The context window of Custom API conditions without their own, or None if unset."""
        api = settings.custom_api
        if api is None:
            return None
        if api.context_window is not None:
            return api.context_window
        if settings.context_window is not None:
            return settings.context_window
        return self._context_window

    def configure(self, settings: ModerationSettings) -> dict[str, Detector]:
        """The external detectors for these settings, keyed by condition kind."""
        out: dict[str, Detector] = {}
        defaults = settings.defaults
        api = settings.custom_api
        if api is not None:
            config = CustomApiConfig(
                url=api.url,
                secret=api.secret or None,
                context_window=self.custom_api_window(settings) or 0,
                on_error=_on_error(api.guard, defaults),
                guard=_guard(api.guard, defaults),
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
            oa = settings.openai
            own = oa.guard if oa is not None else GuardSettings()
            oconfig = OpenAIConfig(
                api_key=self._key,
                base_url=(oa.base_url if oa else None) or self._base_url,
                model=(oa.model if oa else None) or self._model,
                moderation_model=(oa.moderation_model if oa else None) or self._moderation_model,
                on_error=_on_error(own, defaults),
                guard=_guard(own, defaults),
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
