"""Training of the lexical model (``moderation.detectors.lexical``): numpy only, seeded.

One weighted L2 logistic regression per category over the hashed n-grams, fitted by
mini-batch Adagrad with sparse updates (only the buckets a batch touches move; their L2 decay
is applied when they are touched). ``cross_fit`` gives out-of-fold logits: every row is
scored by a model that did not see it, so the embedding heads stacked on top learn how far the
lexical model generalises rather than how well it remembers its own training rows.

The order of the rows in each epoch is a function of each row alone (``epoch_order``: a hash
of the row's n-grams, the epoch and the seed), not of how many rows there are: adding rows
inserts them among the others without reshuffling the rest, so a change of data is judged by
what it teaches, not by a new mini-batch order. The seed is a salt: another seed, another
order, for judging a change over several orders (``bench/quality_judge.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from moderation.detectors.lexical import DIM, LENGTH_CLASSES, LOGIT_CLIP, length_class, row_scale

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]

SEED = 20261124
EPOCHS = 6
BATCH = 256
LR = 4.0
#: L2 penalty; applied lazily, to the buckets a batch touches, in the batch's share.
L2 = 1e-5


@dataclass(frozen=True)
class Sparse:
    """Rows of binary hashed features scaled to unit length (CSR without the values)."""

    indptr: I64  # (N + 1,)
    indices: npt.NDArray[np.int32]  # (nnz,)
    scale: F32  # (N,): the value of every feature of the row (``lexical.row_scale``)
    length: I64  # (N,): the row's ``lexical.length_class``
    key: U64  # (N,): a hash of the row's buckets, which orders the rows (``epoch_order``)

    @classmethod
    def of(cls, rows: Sequence[npt.NDArray[np.int32]]) -> Sparse:
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        indices = (
            np.concatenate(list(rows)).astype(np.int32) if len(rows) else np.zeros(0, np.int32)
        )
        scale = np.array([row_scale(int(n)) for n in lengths], dtype=np.float32)
        length = np.array([length_class(int(n)) for n in lengths], dtype=np.int64)
        key = np.array([row_key(r) for r in rows], dtype=np.uint64)
        return cls(indptr, indices, scale, length, key)

    def __len__(self) -> int:
        return len(self.scale)

    def take(self, rows: I64) -> tuple[npt.NDArray[np.int32], I64, F32]:
        """(bucket, row-in-batch, value) of every feature of ``rows``."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        total = int(lengths.sum())
        offsets = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths)
        pos = offsets + np.arange(total, dtype=np.int64)
        seg = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        return self.indices[pos], seg, self.scale[rows][seg]


def row_key(row: npt.NDArray[np.int32]) -> int:
    """A 64-bit hash of a row's buckets (as the training stores them: int32, in order)."""
    data = np.ascontiguousarray(row, dtype=np.int32).tobytes()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _mix64(z: U64) -> U64:
    """splitmix64's finaliser: every input bit moves every output bit (wrapping uint64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def epoch_order(key: U64, rows: I64, epoch: int, seed: int) -> I64:
    """``rows`` in the order of epoch ``epoch``: sorted by a hash of (row key, epoch, seed).
    A row's place depends on itself, not on the other rows; equal rows stay in their order."""
    salt = np.uint64((epoch * 0x9E3779B97F4A7C15 + seed * 0xD1B54A32D192ED03) % 2**64)
    rank = _mix64(key[rows] ^ salt)
    return rows[np.argsort(rank, kind="stable")]


def _sigmoid(z: F32) -> F32:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


def predict(x: Sparse, weights: F32, bias: F32, rows: I64 | None = None) -> F32:
    """Raw logits (N, categories) of ``rows`` of ``x`` (all rows by default); ``bias`` is
    (length classes, categories)."""
    if rows is None:
        rows = np.arange(len(x), dtype=np.int64)
    out = np.zeros((len(rows), weights.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), 4096):
        chunk = rows[start : start + 4096]
        idx, seg, val = x.take(chunk)
        contrib = weights[idx] * val[:, None]
        for k in range(weights.shape[1]):
            out[start : start + len(chunk), k] = np.bincount(
                seg, weights=contrib[:, k], minlength=len(chunk)
            )
    return out + bias[x.length[rows]]


def fit(
    x: Sparse,
    y: F32,
    w: F32,
    *,
    rows: I64 | None = None,
    epochs: int = EPOCHS,
    lr: float = LR,
    l2: float = L2,
    seed: int = SEED,
) -> tuple[F32, F32]:
    """Weighted L2 logistic regression per column of ``y`` over ``rows`` (all by default);
    ``w`` 0 leaves a cell out. Minimises the weighted mean log loss + ``l2 / 2 * |W|^2``.
    Returns the bucket weights (DIM, categories) and an intercept per length class
    (LENGTH_CLASSES, categories), unpenalised."""
    if rows is None:
        rows = np.arange(len(x), dtype=np.int64)
    n, k = len(rows), y.shape[1]
    weights = np.zeros((DIM, k), dtype=np.float32)
    bias = np.zeros((LENGTH_CLASSES, k), dtype=np.float32)
    acc_w = np.full((DIM, k), 1e-6, dtype=np.float32)
    acc_b = np.full((LENGTH_CLASSES, k), 1e-6, dtype=np.float32)
    # the loss is a weighted mean per category; a batch carries its share of it
    total_w = np.maximum(w[rows].sum(axis=0), 1e-6)
    for epoch in range(epochs):
        order = epoch_order(x.key, rows, epoch, seed)
        for start in range(0, n, BATCH):
            batch = order[start : start + BATCH]
            idx, seg, val = x.take(batch)
            z = np.zeros((len(batch), k), dtype=np.float32)
            contrib = weights[idx] * val[:, None]
            for j in range(k):
                z[:, j] = np.bincount(seg, weights=contrib[:, j], minlength=len(batch))
            classes = x.length[batch]
            p = _sigmoid(z + bias[classes])
            g = ((p - y[batch]) * w[batch] / total_w).astype(np.float32)  # (B, k)
            uniq, inv = np.unique(idx, return_inverse=True)
            grad = np.empty((len(uniq), k), dtype=np.float32)
            gv = g[seg] * val[:, None]
            for j in range(k):
                grad[:, j] = np.bincount(inv, weights=gv[:, j], minlength=len(uniq))
            grad += (l2 * len(batch) / n) * weights[uniq]
            acc_w[uniq] += grad**2
            weights[uniq] -= lr * grad / np.sqrt(acc_w[uniq])
            gb = np.stack(
                [np.bincount(classes, weights=g[:, j], minlength=LENGTH_CLASSES) for j in range(k)],
                axis=1,
            ).astype(np.float32)
            acc_b += gb**2
            bias -= lr * gb / np.sqrt(acc_b)
    return weights, bias


def fit_regression(
    x: Sparse,
    y: F32,
    *,
    rows: I64,
    dim: int = DIM,
    epochs: int = EPOCHS,
    lr: float = 0.5,
    l2: float = L2,
    seed: int = SEED,
) -> tuple[F32, F32]:
    """L2 least squares per column of ``y`` over ``rows`` (the cascade's gate: targets are
    the standardised embedding parts of the heads' logits), by the same mini-batch Adagrad
    with sparse updates; ``x``'s buckets must be below ``dim``. Returns the bucket weights
    (dim, columns) and an intercept per length class (LENGTH_CLASSES, columns)."""
    n, k = len(rows), y.shape[1]
    weights = np.zeros((dim, k), dtype=np.float32)
    bias = np.zeros((LENGTH_CLASSES, k), dtype=np.float32)
    acc_w = np.full((dim, k), 1e-6, dtype=np.float32)
    acc_b = np.full((LENGTH_CLASSES, k), 1e-6, dtype=np.float32)
    for epoch in range(epochs):
        order = epoch_order(x.key, rows, epoch, seed)
        for start in range(0, n, BATCH):
            batch = order[start : start + BATCH]
            idx, seg, val = x.take(batch)
            contrib = weights[idx] * val[:, None]
            z = np.stack(
                [np.bincount(seg, weights=contrib[:, j], minlength=len(batch)) for j in range(k)],
                axis=1,
            ).astype(np.float32)
            classes = x.length[batch]
            g = ((z + bias[classes] - y[batch]) / len(batch)).astype(np.float32)
            uniq, inv = np.unique(idx, return_inverse=True)
            gv = g[seg] * val[:, None]
            grad = np.stack(
                [np.bincount(inv, weights=gv[:, j], minlength=len(uniq)) for j in range(k)],
                axis=1,
            ).astype(np.float32)
            grad += (l2 * len(batch) / n) * weights[uniq]
            acc_w[uniq] += grad**2
            weights[uniq] -= lr * grad / np.sqrt(acc_w[uniq])
            gb = np.stack(
                [np.bincount(classes, weights=g[:, j], minlength=LENGTH_CLASSES) for j in range(k)],
                axis=1,
            ).astype(np.float32)
            acc_b += gb**2
            bias -= lr * gb / np.sqrt(acc_b)
    return weights, bias


def cross_fit(
    x: Sparse, y: F32, w: F32, fold: I64, folds: int, *, clip: bool = True, **kwargs: float | int
) -> F32:
    """Out-of-fold logits (clipped unless ``clip`` is False: a seed soup clips the mean of
    its seeds' logits, as the runtime clips the soup's): row ``i`` scored by the model fitted
    without fold ``fold[i]``."""
    out = np.zeros(y.shape, dtype=np.float32)
    for f in range(folds):
        held = np.flatnonzero(fold == f).astype(np.int64)
        keep = np.flatnonzero(fold != f).astype(np.int64)
        weights, bias = fit(x, y, w, rows=keep, **kwargs)  # type: ignore[arg-type]
        weights = weights.astype(np.float16).astype(np.float32)
        out[held] = predict(x, weights, bias, held)
    return np.clip(out, -LOGIT_CLIP, LOGIT_CLIP) if clip else out
