"""A seed soup of the lexical model: the mean of several training seeds' models, one model.

The seed (``moderation.training.lexical``, ``epoch_order``) salts the order of the rows in
each epoch, and that order alone moves some public sets by up to 0.01-0.02 AUPRC
(``bench/quality_judge.py``). The lexical model is linear, so the mean of K seeds' bucket
weights and intercepts is one model of the same size whose logits are the mean of the
seeds' logits (before the clip): averaging costs nothing at run time. The heads stacked on
it are trained on its out-of-fold logits, and the soup's out-of-fold logits are the mean of
the seeds' (each fold's soup is the mean of the seeds' models for that fold), clipped as the
runtime clips the soup's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from moderation.detectors.lexical import LOGIT_CLIP
from moderation.training import lexical as lexical_training

F32 = npt.NDArray[np.float32]


class SeedFit(NamedTuple):
    """One seed's lexical model: bucket weights (DIM, targets), intercepts (length classes,
    targets) and out-of-fold logits (rows, targets), unclipped."""

    weights: F32
    bias: F32
    oof: F32


def seeds(first: int, k: int) -> list[int]:
    """The seeds of a soup of ``k``: ``first`` and the next ones (a soup of 1 is ``first``)."""
    if k < 1:
        raise ValueError(f"a soup needs at least one seed, not {k}")
    return [first + i for i in range(k)]


def fit_seed(
    x: lexical_training.Sparse, y: F32, w: F32, fold: npt.NDArray[np.int64], folds: int, seed: int
) -> SeedFit:
    """The lexical model fitted on every row with ``seed``, and its out-of-fold logits."""
    oof = lexical_training.cross_fit(x, y, w, fold, folds, clip=False, seed=seed)
    weights, bias = lexical_training.fit(x, y, w, seed=seed)
    return SeedFit(weights, bias, oof)


def _mean(parts: Sequence[F32]) -> F32:
    total = np.zeros(parts[0].shape, dtype=np.float64)
    for p in parts:
        total += p
    return (total / len(parts)).astype(np.float32)


def combine(parts: Sequence[SeedFit]) -> SeedFit:
    """The soup of ``parts``: mean weights and intercepts, and the mean of their out-of-fold
    logits clipped to ``LOGIT_CLIP`` (one part: that part, its logits clipped)."""
    if not parts:
        raise ValueError("a soup of no seeds")
    oof = np.clip(_mean([p.oof for p in parts]), -LOGIT_CLIP, LOGIT_CLIP)
    return SeedFit(_mean([p.weights for p in parts]), _mean([p.bias for p in parts]), oof)
