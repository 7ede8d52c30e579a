"""Per-user token buckets for the send rate limit; the spacing of slow mode; the typing
throttle. With ``--redis-url`` the send limit and slow mode's spacing live in Redis
(``server/redis_hub.py``), so a user connected to several processes gets no more."""

from __future__ import annotations

import math
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

    async def take(self, key: str) -> None:
        """``check`` for the send path; a limiter shared by several processes (the Redis
        one in ``server/redis_hub.py``) asks its store here."""
        self.check(key)

    def _prune(self, now: float) -> None:
        full_after = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class SendSpacing:
    """At most one send per ``seconds`` per key (slow mode), in this process."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, float] = {}

    async def take(self, key: str, seconds: float) -> int:
        """0, recording a send for ``key``, or the wait in milliseconds before the next."""
        t = self._clock()
        last = self._last.get(key)
        if last is not None and t - last < seconds:
            return max(1, math.ceil((seconds - (t - last)) * 1000))
        self._last[key] = t
        if len(self._last) > 100_000:
            self._last.clear()
        return 0


class TypingThrottle:
    """Coalesces typing indicators per sender and target, and caps them per sender.

    A typing frame is forwarded when its state differs from the last one forwarded for that
    sender and target, or when a ``start`` is ``refresh`` seconds old (clients repeat it while
    the user types); at most ``per_second`` frames per sender pass in all (bursts of twice
    that). Everything else is dropped without an error: typing is a hint, and a flood of it
    must never fill a receiver's queue.
    """

    def __init__(
        self,
        *,
        refresh: float = 3.0,
        per_second: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 100_000,
        bucket: RateLimiter | None = None,
    ) -> None:
        self._refresh = refresh
        #: The cap per sender; with ``--redis-url`` a bucket in Redis (all processes).
        self._bucket = bucket or RateLimiter(per_second, int(per_second * 2), clock=clock)
        self._clock = clock
        self._max_entries = max_entries
        self._last: dict[tuple[str, str], tuple[str, float]] = {}

    def admit(self, sender: str, target: str, state: str) -> bool:
        """Whether to forward this typing frame now (the cap counted in this process)."""
        now = self._clock()
        if self._repeated(sender, target, state, now):
            return False
        try:
            self._bucket.check(sender)
        except RateLimited:
            return False
        self._record(sender, target, state, now)
        return True

    async def allow(self, sender: str, target: str, state: str) -> bool:
        """``admit`` for the typing path: the cap is taken from the bucket given (Redis)."""
        now = self._clock()
        if self._repeated(sender, target, state, now):
            return False
        try:
            await self._bucket.take(sender)
        except RateLimited:
            return False
        self._record(sender, target, state, now)
        return True

    def _repeated(self, sender: str, target: str, state: str, now: float) -> bool:
        last = self._last.get((sender, target))
        return (
            last is not None
            and last[0] == state
            and (state != "start" or now - last[1] < self._refresh)
        )

    def _record(self, sender: str, target: str, state: str, now: float) -> None:
        key = (sender, target)
        if len(self._last) >= self._max_entries:
            self._last = {k: v for k, v in self._last.items() if now - v[1] < self._refresh}
            if len(self._last) >= self._max_entries:
                self._last.clear()
        self._last[key] = (state, now)
