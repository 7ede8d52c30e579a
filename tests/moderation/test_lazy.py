from __future__ import annotations

import threading
import time

import pytest

from moderation.lazy import once


def test_concurrent_first_calls_load_once() -> None:
    calls: list[int] = []

    @once
    def load() -> object:
        calls.append(1)
        time.sleep(0.05)  # a slow load: the other threads arrive while it runs
        return object()

    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(load())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)
    assert load() is got[0] and load.__name__ == "load"


def test_a_failed_load_is_tried_again() -> None:
    attempts: list[int] = []

    @once
    def load() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("model file busy")
        return 42

    with pytest.raises(OSError):
        load()
    assert load() == 42 and load() == 42 and len(attempts) == 2
