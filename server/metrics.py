"""Prometheus metrics, on a registry of the app's own (no process-global state)."""

from __future__ import annotations

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
        self.moderation_latency = Histogram(
            "parley_moderation_seconds",
            "Time from storing a pending message to its verdict",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
