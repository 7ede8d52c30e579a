"""Prometheus metrics, on a registry of the app's own (no process-global state)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters and gauges ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "parley_connections", "Open authenticated WebSocket connections", registry=self.registry
        )
        self.messages = Counter(
            "parley_messages_total", "Messages stored", ["status"], registry=self.registry
        )
        self.errors = Counter(
            "parley_client_errors_total",
            "Error frames and responses by code",
            ["code"],
            registry=self.registry,
        )
        self.verdicts = Counter(
            "parley_verdicts_total", "Moderation verdicts", ["status"], registry=self.registry
        )
        self.blocked_by_rule = Counter(
            "parley_blocked_total",
            "Messages disapproved by the moderation rules, by the rule that matched first",
            ["rule"],
            registry=self.registry,
        )
        self.moderation_latency = Histogram(
            "parley_moderation_seconds",
            "Time from storing a pending message to its verdict",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

        self.provider_requests = Counter(
            "parley_provider_requests_total",
            "External moderation provider calls by outcome (ok, or the error kind)",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.provider_errors = Counter(
            "parley_provider_errors_total",
            "Failed external moderation provider calls (actionOnError applied)",
            ["provider"],
            registry=self.registry,
        )
        self.provider_latency = Histogram(
            "parley_provider_seconds",
            "External moderation provider call latency",
            ["provider"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.webhook_attempts = Counter(
            "parley_webhook_attempts_total",
            "Outgoing webhook delivery attempts by outcome (delivered, retry, failed)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_pending = Gauge(
            "parley_webhook_pending", "Outgoing webhook deliveries waiting", registry=self.registry
        )
        self.gc_pause = Histogram(
            "parley_gc_pause_seconds",
            "Garbage collector passes by generation (the event loop stands still meanwhile)",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
            registry=self.registry,
        )
        self.push = Counter(
            "parley_push_total",
            "Offline pushes by outcome (delivered, retry, gone, failed, dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_events_dropped = Counter(
            "parley_webhook_events_dropped_total",
            "Webhook events dropped because the in-memory queue was full",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def watch_gc(self) -> Callable[[], None]:
        """Time every garbage collector pass into ``gc_pause``; returns the undo."""
        started: list[float] = [0.0]
        children = {g: self.gc_pause.labels(str(g)) for g in range(3)}

        def callback(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                children[info["generation"]].observe(time.perf_counter() - started[0])

        gc.callbacks.append(callback)
        return lambda: gc.callbacks.remove(callback)
