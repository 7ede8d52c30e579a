from __future__ import annotations

import gc

from server.metrics import Metrics


def _count(metrics: Metrics, generation: str) -> float:
    value = metrics.registry.get_sample_value(
        "parley_gc_pause_seconds_count", {"generation": generation}
    )
    return value or 0.0


def test_gc_passes_are_timed_by_generation_until_unwatched() -> None:
    metrics = Metrics()
    unwatch = metrics.watch_gc()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        unwatch()
    assert _count(metrics, "2") >= 1 and _count(metrics, "0") >= 1
    assert b"parley_gc_pause_seconds_bucket" in metrics.render()
    before = _count(metrics, "2")
    gc.collect()
    assert _count(metrics, "2") == before  # no longer watching
