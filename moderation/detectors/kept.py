"""``Kept``: a detector's answers for the texts it saw last, for chat that repeats texts.

Chat repeats texts ("ok", "thanks", a pasted announcement), and a message is asked about on
the send path and again when its detector runs, so the detectors keep their per-text answers
(the similarity stage's decision, the keyword pre-check, VADER's scores) for the last
``TEXTS_KEPT`` texts, as many as the heads' score cache (``cascade.SCORE_CACHE_SIZE``). A text
longer than ``KEPT_TEXT_CHARS`` is never kept, so each cache stays under about 8 MB whatever the
messages' length. Not thread-safe: the engine asks on the event loop.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

#: Texts longer than this are not kept by the per-text caches (``Kept``, and the heads'
#: ``ModelRegistry.lexical_stage`` and ``text_signals``).
KEPT_TEXT_CHARS = 1000
#: Texts whose answers a ``Kept`` holds.
TEXTS_KEPT = 8192

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Kept(Generic[K, V]):
    """At most ``size`` answers by key (least recently used out first); ``put`` keeps none
    for a text over ``KEPT_TEXT_CHARS``."""

    __slots__ = ("_data", "_size")

    def __init__(self, size: int = TEXTS_KEPT) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self._size = max(1, size)

    def get(self, key: K) -> V | None:
        found = self._data.get(key)
        if found is not None:
            self._data.move_to_end(key)
        return found

    def put(self, key: K, value: V, text: str) -> None:
        """Keep ``value`` for ``key`` (which holds ``text``), unless the text is too long."""
        if len(text) > KEPT_TEXT_CHARS:
            return
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self._size:
            data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)
