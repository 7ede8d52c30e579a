"""Rate limits and slow mode across the processes of a deployment, kept in Redis
(``--redis-url``): the hub (``server/redis_hub.py``) hands them out. Redis unavailable or slow,
each falls back to this process's own record, as without Redis.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from redis.exceptions import RedisError

from server.errors import RateLimited
from server.ratelimit import RateLimiter, SendSpacing


class RedisLink(Protocol):
    """What the limiters need of the hub: its client (None while Redis is away) and its
    rate-limited warning."""

    @property
    def client(self) -> Any: ...

    def warn(self, text: str, exc: BaseException | None = None) -> None: ...


#: A token bucket in a hash {t: tokens, ts: seconds}; Redis's clock, so all processes agree.
#: Returns 0 when a token was taken, else the wait in milliseconds.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.floor((1 - tokens) / rate * 1000) + 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""

#: How long a send waits for Redis before the process's own bucket decides.
TAKE_TIMEOUT = 0.5


class RedisRateLimiter(RateLimiter):
    """``rate`` sends per second per user across the deployment (``parley:rl:<uid>``; the
    typing cap's buckets under ``parley:rl:ty:<uid>``).

    Redis unavailable or slow: this process's own bucket decides, as without Redis.
    """

    def __init__(self, hub: RedisLink, rate: float, burst: int, *, prefix: str) -> None:
        super().__init__(rate, burst)
        self._hub = hub
        self._prefix = prefix
        self._script: Any = None

    async def take(self, key: str) -> None:
        if self._rate <= 0:
            return
        r = self._hub.client
        if r is None:
            self.check(key)
            return
        if self._script is None:
            self._script = r.register_script(_TAKE)
        try:
            wait = int(
                await asyncio.wait_for(
                    self._script(keys=[self._prefix + key], args=[self._rate, self._burst]),
                    TAKE_TIMEOUT,
                )
            )
        except (RedisError, OSError, TimeoutError) as exc:
            self._hub.warn("redis rate limit unavailable; this process's limit applies", exc)
            self.check(key)
            return
        if wait > 0:
            raise RateLimited(wait)


class RedisSpacing(SendSpacing):
    """Slow mode across the deployment: ``parley:slow:<key>`` exists for ``seconds`` after a
    send (``SET NX PX``; its remaining time is the wait). Redis unavailable or slow: this
    process's own record decides, as without Redis."""

    def __init__(self, hub: RedisLink, *, prefix: str) -> None:
        super().__init__()
        self._hub = hub
        self._prefix = prefix

    async def take(self, key: str, seconds: float) -> int:
        r = self._hub.client
        if r is None:
            return await super().take(key, seconds)
        name = self._prefix + key
        try:
            async with asyncio.timeout(TAKE_TIMEOUT):
                pipe = r.pipeline(transaction=False)
                pipe.set(name, b"1", nx=True, px=max(1, int(seconds * 1000)))
                pipe.pttl(name)
                taken, ttl = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._hub.warn("redis slow mode unavailable; this process's record applies", exc)
            return await super().take(key, seconds)
        return 0 if taken else max(1, int(ttl))
