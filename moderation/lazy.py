"""``once``: a thread-safe lazy value, for models and lexicons loaded on first use."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def once(factory: Callable[[], T]) -> Callable[[], T]:
    """Decorate a loader: the first call runs it (one thread at a time; a failed load is
    retried on the next call), every later call returns the same value without locking."""
    lock = threading.Lock()
    box: list[T] = []

    @functools.wraps(factory)
    def get() -> T:
        if not box:
            with lock:
                if not box:
                    box.append(factory())
        return box[0]

    return get
