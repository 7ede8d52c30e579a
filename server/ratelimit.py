"""Per-user token buckets for the send rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable

from server.errors import RateLimited


class RateLimiter:
    """``rate`` sends per second per key, bursts up to ``burst``; ``rate <= 0`` disables it."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = max(1.0, float(burst))
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise RateLimited with the wait in milliseconds."""
        if self._rate <= 0:
            return
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(max(1, int((1.0 - tokens) / self._rate * 1000) + 1))
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 100_000:
            self._prune(now)

    def _prune(self, now: float) -> None:
        full_after = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
