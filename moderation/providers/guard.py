"""Isolation for one provider: a concurrency limit, a timeout and a circuit breaker.

``ProviderGuard.call`` bounds the whole call, waiting for a concurrency slot included, by the
provider's timeout, so a hanging provider holds a moderation worker for at most that long;
once the breaker is open, calls fail at once. Every call is reported (latency and outcome)
through the ``Reporter`` the server passes in (metrics, ``moderation.provider_failed`` events).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from moderation.errors import DetectorError
from moderation.providers.breaker import CircuitBreaker
from moderation.types import Detection

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The detection category a provider reports when it failed and ``actionOnError`` is block.
ERROR_CATEGORY = "provider_error"


class OnError(StrEnum):
    """What a failed provider call means for the condition."""

    ALLOW = "allow"
    BLOCK = "block"


class ProviderError(DetectorError):
    """A provider call failed; ``kind`` is one of ``timeout``, ``http_status``,
    ``bad_response``, ``transport``, ``circuit_open``, ``error``."""

    def __init__(self, detector: str, kind: str, message: str) -> None:
        super().__init__(detector, message)
        self.kind = kind


@dataclass(frozen=True)
class ProviderCall:
    """The outcome of one provider call, for metrics and failure events.

    ``error`` is None on success, else the ``ProviderError`` kind; ``detail`` says what went
    wrong (never a secret). ``message_id`` is 0 for try-out evaluations.
    """

    provider: str
    seconds: float
    error: str | None
    detail: str
    message_id: int


Reporter = Callable[[ProviderCall], None]


def _no_report(call: ProviderCall) -> None:
    return None


@dataclass(frozen=True)
class GuardConfig:
    """Limits for one provider; times in seconds."""

    timeout: float = 5.0
    max_concurrency: int = 8
    breaker_failures: int = 5
    breaker_reset: float = 30.0


class ProviderGuard:
    """Runs one provider's calls under its limits; see the module docstring."""

    def __init__(self, name: str, config: GuardConfig, *, report: Reporter = _no_report) -> None:
        self.name = name
        self.config = config
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset)
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._report = report

    async def call(self, fn: Callable[[], Awaitable[T]], *, message_id: int) -> T:
        """``await fn()`` under the limits; raises ``ProviderError`` on any failure."""
        if not self.breaker.allow():
            err = ProviderError(
                self.name, "circuit_open", "circuit breaker open after repeated failures"
            )
            self._done(0.0, err, message_id)
            raise err
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.config.timeout):
                async with self._semaphore:
                    result = await fn()
        except TimeoutError as exc:
            err = ProviderError(
                self.name, "timeout", f"no answer within {round(self.config.timeout * 1000)} ms"
            )
            self.breaker.failure()
            self._done(time.monotonic() - started, err, message_id)
            raise err from exc
        except ProviderError as exc:
            self.breaker.failure()
            self._done(time.monotonic() - started, exc, message_id)
            raise
        except Exception as exc:
            err = ProviderError(self.name, "error", f"{type(exc).__name__}: {exc}")
            self.breaker.failure()
            self._done(time.monotonic() - started, err, message_id)
            raise err from exc
        self.breaker.success()
        self._done(time.monotonic() - started, None, message_id)
        return result

    def _done(self, seconds: float, err: ProviderError | None, message_id: int) -> None:
        if err is not None:
            log.warning("provider %s failed on message %d: %s", self.name, message_id, err.message)
        try:
            self._report(
                ProviderCall(
                    self.name,
                    seconds,
                    None if err is None else err.kind,
                    "" if err is None else err.message,
                    message_id,
                )
            )
        except Exception:
            log.exception("reporting a call of provider %s failed", self.name)


def error_detections(
    detector: str, err: ProviderError, on_error: OnError, categories: tuple[str, ...]
) -> list[Detection]:
    """The detections a failed call yields under ``on_error``.

    ``allow``: none (the condition does not match). ``block``: confidence 1.0 in
    ``provider_error`` and in every category the condition asks for, so the condition matches
    and the rule's actions apply; the reason names the provider error.
    """
    if on_error is OnError.ALLOW:
        return []
    reason = f"{detector} error ({err.kind}): {err.message}; actionOnError=block"
    names = dict.fromkeys((ERROR_CATEGORY, *categories))
    return [Detection(detector, c, 1.0, reason) for c in names]
