"""The cascade's results and their bounded cache, shared by the detectors that use the heads.

A text is scored in one of two stages (``moderation.detectors.heads``): the **lexical**
stage (the gate settles it: hashed n-grams and cheap features only, tens of microseconds)
or the **encoder** stage (the sentence embedding, micro-batched off the event loop).
``ScoreCache`` keeps the last ``SCORE_CACHE_SIZE`` results by text (LRU, thread-safe), so
a repeated text ("ok", "thanks", a copy-pasted announcement) and the toxicity and scam
detectors looking at one message pay once; it counts how many texts each stage decided.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

STAGE_LEXICAL = "lexical"
STAGE_ENCODER = "encoder"
#: Texts whose results are kept.
SCORE_CACHE_SIZE = 8192


@dataclass(frozen=True)
class HeadResult:
    """The heads' scores for one text (category -> 0..1) and the stage that produced them
    (``STAGE_LEXICAL``: the gate's estimates, capped; ``STAGE_ENCODER``: the full model)."""

    stage: str
    scores: dict[str, float]


class ScoreCache:
    """A bounded LRU of ``HeadResult`` by text, with counters (thread-safe).

    An encoder-stage result replaces a lexical-stage one, never the reverse; ``get`` with
    ``need_encoder`` ignores a lexical-stage result.
    """

    def __init__(self, size: int = SCORE_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, HeadResult] = OrderedDict()
        self._lock = threading.Lock()
        self.counts = {"hits": 0, "lexical": 0, "encoder": 0}

    def get(self, key: str, *, need_encoder: bool = False) -> HeadResult | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or (need_encoder and found.stage != STAGE_ENCODER):
                return None
            self._items.move_to_end(key)
            self.counts["hits"] += 1
            return found

    def put(self, key: str, result: HeadResult) -> None:
        with self._lock:
            self.counts[result.stage] += 1
            if self.size <= 0:
                return
            old = self._items.get(key)
            if old is not None and old.stage == STAGE_ENCODER:
                return
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.counts = dict.fromkeys(self.counts, 0)
