"""Time, injected: services read the clock they were given, so tests move time instead of
sleeping. ``now()`` is wall time in whole Unix seconds (what is stored and sent);
``monotonic()`` measures intervals (rate limits, throttles)."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Unix seconds."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> int:
        return int(time.time())

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()
