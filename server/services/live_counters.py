"""The dashboard's live counters (issue 17 item 3): messages/s, blocked/s and the rules that
blocked most, verdict latency p50/p99, and the open review, flagged and reported items, pushed every few seconds to open
dashboards as ``counters`` frames while any is open.

Rates and percentiles come from two snapshots of the process's own Prometheus metrics (the
same numbers ``/metrics`` shows), so they describe this process over the last interval; the
percentiles are the upper bound of the histogram bucket they fall in (``<= 5 ms``).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server.clock import Clock
from server.metrics import Metrics
from server.services.staff_feed import StaffFeed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    at: float  # monotonic seconds
    messages: float
    blocked: float
    by_rule: tuple[tuple[str, float], ...]  # (rule id, messages it disapproved)
    latency: tuple[tuple[float, float], ...]  # (bucket upper bound, cumulative count)


def take_snapshot(metrics: Metrics, at: float) -> Snapshot:
    """The counters' totals now (``at``: the clock's monotonic time)."""
    messages = sum(
        s.value
        for family in metrics.messages.collect()
        for s in family.samples
        if s.name.endswith("_total")
    )
    blocked = sum(
        s.value
        for family in metrics.verdicts.collect()
        for s in family.samples
        if s.name.endswith("_total") and s.labels.get("status") == "disapproved"
    )
    by_rule = tuple(
        (s.labels["rule"], s.value)
        for family in metrics.blocked_by_rule.collect()
        for s in family.samples
        if s.name.endswith("_total")
    )
    buckets = tuple(
        (float(s.labels["le"]), s.value)
        for family in metrics.moderation_latency.collect()
        for s in family.samples
        if s.name.endswith("_bucket")
    )
    return Snapshot(at, messages, blocked, by_rule, buckets)


def quantile(
    before: tuple[tuple[float, float], ...], after: tuple[tuple[float, float], ...], q: float
) -> float | None:
    """The upper bound of the bucket holding quantile ``q`` of the observations made between
    two cumulative histograms; None without any (``inf`` past the last finite bucket)."""
    prior = dict(before)
    counts = [(le, n - prior.get(le, 0.0)) for le, n in after]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return None
    rank = q * total
    for le, n in counts:
        if n >= rank:
            return le
    return math.inf


def frame(before: Snapshot, after: Snapshot, open_items: dict[str, int]) -> dict[str, Any]:
    """The ``counters`` frame for the interval between two snapshots."""
    span = max(after.at - before.at, 1e-9)

    def ms(value: float | None) -> float | None:
        return None if value is None or math.isinf(value) else round(value * 1000, 1)

    prior = dict(before.by_rule)
    by_rule = sorted(
        ((rule, n - prior.get(rule, 0.0)) for rule, n in after.by_rule), key=lambda x: -x[1]
    )
    return {
        "type": "counters",
        "messagesPerSecond": round((after.messages - before.messages) / span, 2),
        "blockedPerSecond": round((after.blocked - before.blocked) / span, 2),
        # The five rules that blocked most in the interval (messages, not per second).
        "blockedByRule": [{"ruleId": rule, "count": int(n)} for rule, n in by_rule[:5] if n > 0],
        "verdictP50Ms": ms(quantile(before.latency, after.latency, 0.5)),
        "verdictP99Ms": ms(quantile(before.latency, after.latency, 0.99)),
        "open": open_items,
    }


class LiveCounters:
    """Publishes a ``counters`` frame every ``interval`` seconds while a dashboard is open."""

    def __init__(
        self,
        metrics: Metrics,
        feed: StaffFeed,
        open_items: Callable[[], Awaitable[dict[str, int]]],
        *,
        clock: Clock,
        interval: float = 2.0,
    ) -> None:
        self._metrics = metrics
        self._feed = feed
        self._open_items = open_items
        self._clock = clock
        self._interval = interval

    async def run(self) -> None:
        """Until cancelled (the lifespan owns the task); a failed tick is logged, not fatal."""
        last = take_snapshot(self._metrics, self._clock.monotonic())
        while True:
            await asyncio.sleep(self._interval)
            now = take_snapshot(self._metrics, self._clock.monotonic())
            if self._feed.count:
                try:
                    self._feed.publish(frame(last, now, await self._open_items()))
                except Exception:
                    log.exception("live counters: a tick failed")
            last = now
