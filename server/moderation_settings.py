"""Moderation settings as frozen typed models, each with one validator.

``PUT /moderation/settings`` (docs/moderation.md) holds:

- top level: ``contextWindow``, ``actionOnError``, ``timeoutMs`` (defaults for the providers),
  ``aiCascade`` (the local AI rules' cascade: a lexical first stage settles clear texts
  without the encoder; faster, slightly less accurate; off unless set);
- ``customApi``: ``{url, secret, contextWindow, timeoutMs, actionOnError, maxConcurrency,
  breakerFailures, breakerResetMs}`` (the Custom API provider);
- ``openai``: ``{baseUrl, model, moderationModel, timeoutMs, actionOnError, maxConcurrency,
  breakerFailures, breakerResetMs}``; the API key never goes through the API;
- ``webhooks``: the outgoing event webhooks, ``[{id, url, secret, events, enabled,
  timeoutMs, maxAttempts, backoffMs, maxBackoffMs}]``.

``parse`` (one per model) validates a request body and raises ``BadRequest`` naming the field;
``from_json`` reads what was stored (already validated: lenient, never raises); ``to_json`` is
the stored shape and ``public_json`` the shown one (secrets masked). The rules shared by the
three (integer ranges, http(s) URLs, allow/block, unknown fields) are defined once, in
``settings_fields.py``; the webhooks' model is in ``webhook_settings.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.errors import BadRequest
from server.settings_fields import (
    ACTIONS_ON_ERROR,
    MASK,
    known_fields,
    on_error_field,
    opt_bool_field,
    opt_int_field,
    put_set,
    secret_field,
    stored_int,
    url_field,
)
from server.webhook_settings import WebhookSettings

OPENAI_KEY_FILE = "openai.key"


# ------------------------------------------------------------------------ providers


@dataclass(frozen=True)
class GuardSettings:
    """What guards a provider's calls; None where unset (the top level's, then defaults)."""

    timeout_ms: int | None = None
    action_on_error: str | None = None
    max_concurrency: int | None = None
    breaker_failures: int | None = None
    breaker_reset_ms: int | None = None

    KEYS = ("timeoutMs", "actionOnError", "maxConcurrency", "breakerFailures", "breakerResetMs")

    @classmethod
    def parse(cls, obj: Mapping[str, Any], prefix: str) -> GuardSettings:
        return cls(
            timeout_ms=opt_int_field(obj, "timeoutMs", prefix),
            max_concurrency=opt_int_field(obj, "maxConcurrency", prefix),
            breaker_failures=opt_int_field(obj, "breakerFailures", prefix),
            breaker_reset_ms=opt_int_field(obj, "breakerResetMs", prefix),
            action_on_error=on_error_field(obj, prefix),
        )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> GuardSettings:
        on_error = obj.get("actionOnError")
        return cls(
            timeout_ms=stored_int(obj, "timeoutMs"),
            action_on_error=on_error if on_error in ACTIONS_ON_ERROR else None,
            max_concurrency=stored_int(obj, "maxConcurrency"),
            breaker_failures=stored_int(obj, "breakerFailures"),
            breaker_reset_ms=stored_int(obj, "breakerResetMs"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        put_set(out, "timeoutMs", self.timeout_ms)
        put_set(out, "maxConcurrency", self.max_concurrency)
        put_set(out, "breakerFailures", self.breaker_failures)
        put_set(out, "breakerResetMs", self.breaker_reset_ms)
        put_set(out, "actionOnError", self.action_on_error)
        return out


@dataclass(frozen=True)
class CustomApiSettings:
    """The Custom API provider (the customer's own moderation endpoint)."""

    url: str
    secret: str | None = field(default=None, repr=False)
    context_window: int | None = None
    guard: GuardSettings = GuardSettings()

    @classmethod
    def parse(cls, value: object, current: CustomApiSettings | None) -> CustomApiSettings | None:
        """A PUT body's ``customApi`` (None removes it); a masked or absent secret keeps the
        current one."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadRequest("field 'customApi' must be an object or null", {"field": "customApi"})
        p = "customApi."
        known_fields(value, ("url", "secret", "contextWindow", *GuardSettings.KEYS), p)
        guard = GuardSettings.parse(value, p)
        window = opt_int_field(value, "contextWindow", p)
        url = url_field(value.get("url"), p + "url")
        secret = secret_field(
            value.get("secret"), current.secret if current else None, p + "secret"
        )
        return cls(url=url, secret=secret, context_window=window, guard=guard)

    @classmethod
    def from_json(cls, value: object) -> CustomApiSettings | None:
        if not isinstance(value, dict) or not isinstance(value.get("url"), str):
            return None
        secret = value.get("secret")
        return cls(
            url=value["url"],
            secret=secret if isinstance(secret, str) and secret else None,
            context_window=stored_int(value, "contextWindow"),
            guard=GuardSettings.from_json(value),
        )

    def to_json(self) -> dict[str, Any]:
        out = self.guard.to_json()
        put_set(out, "contextWindow", self.context_window)
        out["url"] = self.url
        out["secret"] = self.secret
        return out

    def public_json(self) -> dict[str, Any]:
        out = self.to_json()
        if self.secret:
            out["secret"] = MASK
        return out


@dataclass(frozen=True)
class OpenAISettings:
    """An OpenAI-compatible endpoint; unset values fall back to the server's settings."""

    base_url: str | None = None
    model: str | None = None
    moderation_model: str | None = None
    guard: GuardSettings = GuardSettings()

    @classmethod
    def parse(cls, value: object) -> OpenAISettings | None:
        """A PUT body's ``openai`` (None removes it); an API key is refused."""
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
        p = "openai."
        known_fields(value, ("baseUrl", "model", "moderationModel", *GuardSettings.KEYS), p)
        guard = GuardSettings.parse(value, p)
        base_url = (
            None if value.get("baseUrl") is None else url_field(value["baseUrl"], p + "baseUrl")
        )
        names: dict[str, str | None] = {}
        for key in ("model", "moderationModel"):
            name = value.get(key)
            if name is not None and (not isinstance(name, str) or not name.strip()):
                raise BadRequest(f"field '{p}{key}' must be a non-empty string", {"field": p + key})
            names[key] = name.strip() if isinstance(name, str) else None
        return cls(base_url, names["model"], names["moderationModel"], guard)

    @classmethod
    def from_json(cls, value: object) -> OpenAISettings | None:
        if not isinstance(value, dict):
            return None

        def text(key: str) -> str | None:
            v = value.get(key)
            return v if isinstance(v, str) and v else None

        return cls(
            text("baseUrl"), text("model"), text("moderationModel"), GuardSettings.from_json(value)
        )

    def to_json(self) -> dict[str, Any]:
        out = self.guard.to_json()
        put_set(out, "baseUrl", self.base_url)
        put_set(out, "model", self.model)
        put_set(out, "moderationModel", self.moderation_model)
        return out


# ------------------------------------------------------------------------ all of them


@dataclass(frozen=True)
class ModerationSettings:
    """Everything ``PUT /moderation/settings`` holds; None where never set."""

    context_window: int | None = None
    action_on_error: str | None = None
    timeout_ms: int | None = None
    custom_api: CustomApiSettings | None = None
    openai: OpenAISettings | None = None
    webhooks: tuple[WebhookSettings, ...] | None = None
    ai_cascade: bool | None = None

    def updated(self, body: Mapping[str, Any]) -> ModerationSettings:
        """These settings with a PUT body's fields validated and applied; fields the body
        does not name keep their values (unknown top-level fields are ignored)."""
        window = opt_int_field(body, "contextWindow", "")
        on_error = on_error_field(body, "")
        timeout = opt_int_field(body, "timeoutMs", "")
        cascade = opt_bool_field(body, "aiCascade", "")
        return ModerationSettings(
            context_window=self.context_window if window is None else window,
            action_on_error=self.action_on_error if on_error is None else on_error,
            timeout_ms=self.timeout_ms if timeout is None else timeout,
            custom_api=(
                CustomApiSettings.parse(body["customApi"], self.custom_api)
                if "customApi" in body
                else self.custom_api
            ),
            openai=OpenAISettings.parse(body["openai"]) if "openai" in body else self.openai,
            webhooks=(
                WebhookSettings.parse_all(body["webhooks"], self.webhooks or ())
                if "webhooks" in body
                else self.webhooks
            ),
            ai_cascade=self.ai_cascade if cascade is None else cascade,
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> ModerationSettings:
        """The stored settings (validated when written)."""
        top = GuardSettings.from_json(value)
        return cls(
            context_window=stored_int(value, "contextWindow"),
            action_on_error=top.action_on_error,
            timeout_ms=top.timeout_ms,
            custom_api=CustomApiSettings.from_json(value.get("customApi")),
            openai=OpenAISettings.from_json(value.get("openai")),
            webhooks=(
                WebhookSettings.from_json_all(value["webhooks"]) if "webhooks" in value else None
            ),
            ai_cascade=value["aiCascade"] if isinstance(value.get("aiCascade"), bool) else None,
        )

    @property
    def cascade(self) -> bool:
        """Whether the local AI rules use their cascade (``aiCascade``; off unless set)."""
        return self.ai_cascade is True

    @property
    def defaults(self) -> GuardSettings:
        """The top-level defaults for both providers."""
        return GuardSettings(timeout_ms=self.timeout_ms, action_on_error=self.action_on_error)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        put_set(out, "contextWindow", self.context_window)
        put_set(out, "actionOnError", self.action_on_error)
        put_set(out, "timeoutMs", self.timeout_ms)
        put_set(out, "aiCascade", self.ai_cascade)
        if self.custom_api is not None:
            out["customApi"] = self.custom_api.to_json()
        if self.openai is not None:
            out["openai"] = self.openai.to_json()
        if self.webhooks is not None:
            out["webhooks"] = [h.to_json() for h in self.webhooks]
        return out

    def public_json(self, *, openai_key: bool) -> dict[str, Any]:
        """As the API shows them: secrets masked, and whether an OpenAI key is configured."""
        out = self.to_json()
        if self.custom_api is not None:
            out["customApi"] = self.custom_api.public_json()
        if self.webhooks is not None:
            out["webhooks"] = [h.public_json() for h in self.webhooks]
        out["openaiApiKeyConfigured"] = openai_key
        out["aiCascade"] = self.cascade
        return out
