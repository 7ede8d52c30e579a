from __future__ import annotations

import pytest

from server.errors import RateLimited
from server.ratelimit import RateLimiter


def test_burst_then_refill() -> None:
    now = [0.0]
    limiter = RateLimiter(2.0, 3, clock=lambda: now[0])
    for _ in range(3):
        limiter.check("u")
    with pytest.raises(RateLimited) as info:
        limiter.check("u")
    assert 1 <= info.value.retry_after_ms <= 501
    limiter.check("other")  # per key
    now[0] += 0.5
    limiter.check("u")


def test_zero_disables() -> None:
    limiter = RateLimiter(0, 1)
    for _ in range(1000):
        limiter.check("u")
