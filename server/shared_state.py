"""Cache invalidation across the processes of one deployment (``--redis-url``).

A service that caches what storage holds takes an ``Invalidator`` and calls
``publish(kind, key)`` after each write it makes; with Redis (``server/redis_hub.py``) every
other process then calls that service's ``invalidate(kind, key)``. The embedded default passes
``NO_SHARING``, which does nothing: one process, nothing to tell.

Kinds and keys: ``user`` uid, ``blocks`` uid (``*``: all), ``members`` guid,
``restrictions`` (any key: the whole set is reloaded), ``moderation`` (rules, lists and
settings: the engine is rebuilt). The key ``*`` means everything of that kind: sent after a
process lost Redis for a while (invalidations may have been missed both ways).
"""

from __future__ import annotations

from typing import Protocol


class Invalidator(Protocol):
    def publish(self, kind: str, key: str) -> None:
        """Tell the other processes that what ``kind``/``key`` caches changed (non-blocking)."""
        ...


class _NoSharing:
    def publish(self, kind: str, key: str) -> None:
        return None


#: The embedded default: a single process has nobody to tell.
NO_SHARING: Invalidator = _NoSharing()
