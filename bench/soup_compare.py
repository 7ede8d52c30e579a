"""A seed soup against the shipped model and the seeds it averages.

    .venv/bin/python bench/soup_compare.py --cache /tmp/emb.npz --work /tmp/soup --seeds 5

Trains the shipped data's lexical model with ``--seeds`` seeds (the shipped seed and the next
ones; each seed's fit is kept in ``--work`` and reused), builds each seed's heads exactly as
``moderation.training.train`` does (so seed 1 is the shipped model), and the soups of the first
3 and of all the seeds (``moderation.training.soup``: the mean of the lexical models, the heads
trained on the mean of their out-of-fold logits) with three ways to get the heads:

- ``oof``: heads trained once (the shipped seed) on the soup's out-of-fold lexical logits;
- ``avg``: each seed's heads with their Platt scaling folded in (``a * w``, ``a * b + c``),
  averaged, and Platt refitted on the calibration rows with the soup's lexical logits;
- ``both``: the mean of those two, Platt refitted the same way.

Each is scored as ``bench/quality_judge.py`` scores a mix (``bench/moderation_quality.py
--no-latency``'s figures for the full model), plus the precision of the holds (any rule
category at the review threshold) on the sets never trained on. Prints one table: the shipped
file, each seed, the seeds' mean and range, and every soup, with the literal rule (does any
public set's figure fall against the shipped file?).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import moderation_quality as mq
import numpy as np
import quality_judge as qj

from moderation.defaults import REVIEW_THRESHOLD
from moderation.detectors.heads import Heads
from moderation.detectors.lexical import LEXICAL_CATEGORIES, Lexical, buckets
from moderation.detectors.model_registry import shared_models
from moderation.training import lexical as lexical_training
from moderation.training import soup, train
from moderation.training.datasets import ALL_CATEGORIES, hash_split, public_dir

F32 = np.ndarray
NEVER_TRAINED = ("jigsaw101", "xstest", "simplesafetytests")


class Prepared:
    """``train.train``'s inputs, computed once."""

    def __init__(self, data: Path, cache: Path) -> None:
        rows = train.training_rows(data)
        self.calib = np.array([hash_split("calib", r.text, 15) == "test" for r in rows])
        texts = [r.text for r in rows]
        self.emb = train.embed_all(texts, cache)
        self.y, self.mask = train.head_labels(rows, ALL_CATEGORIES)
        self.source_w = np.array(
            [train.OWN_WEIGHT if r.source == "parley" else 1.0 for r in rows], dtype=np.float32
        )
        self.sparse = lexical_training.Sparse.of([buckets(t) for t in texts])
        ly, lmask = train.lexical_labels(rows)
        self.lw = train.balanced_weights(ly, lmask, self.source_w)
        self.ly = ly
        self.fold = np.array([train.lexical_fold(t) for t in texts], dtype=np.int64)
        profanity = shared_models().profanity()
        self.extra = np.stack([train.extra_features(t, profanity) for t in texts])
        self.l2 = np.full(
            self.emb.shape[1] + self.extra.shape[1] + len(LEXICAL_CATEGORIES),
            train.L2,
            dtype=np.float32,
        )
        self.l2[-len(LEXICAL_CATEGORIES) :] *= train.LEXICAL_L2_FACTOR

    def x(self, oof: F32) -> F32:
        return np.concatenate([self.emb, self.extra, oof], axis=1).astype(np.float32)

    def heads(self, x: F32, seed: int) -> Heads:
        return train.fit_calibrated_heads(
            x, self.y, self.mask, self.source_w, self.calib, ALL_CATEGORIES, self.l2, seed
        )

    def refit_platt(self, x: F32, weights: F32, bias: F32) -> Heads:
        """Heads ``x @ weights + bias`` with Platt scaling fitted on the calibration rows."""
        c = self.calib
        logits = x[c] @ weights + bias
        wc = train.balanced_weights(self.y[c], self.mask[c], self.source_w[c])
        platt = [
            train.fit_platt(logits[:, j], self.y[c][:, j], wc[:, j])
            for j in range(len(ALL_CATEGORIES))
        ]
        return Heads(
            categories=tuple(ALL_CATEGORIES),
            weights=weights.astype(np.float32),
            bias=bias.astype(np.float32),
            platt_a=np.array([a for a, _ in platt], dtype=np.float32),
            platt_b=np.array([b for _, b in platt], dtype=np.float32),
        )


def folded(heads: Heads) -> tuple[F32, F32]:
    """The heads' calibrated log-odds as one linear map (Platt folded into the weights)."""
    return heads.weights * heads.platt_a, heads.bias * heads.platt_a + heads.platt_b


def lexical_of(part: soup.SeedFit) -> Lexical:
    # as train.train_lexical stores it: float16 weights
    return Lexical(
        LEXICAL_CATEGORIES, part.weights.astype(np.float16).astype(np.float32), part.bias
    )


def seed_fit(prep: Prepared, seed: int, work: Path) -> soup.SeedFit:
    path = work / f"lexical_{seed}.npz"
    if path.exists():
        with np.load(path) as d:
            return soup.SeedFit(d["weights"], d["bias"], d["oof"])
    start = time.perf_counter()
    part = soup.fit_seed(prep.sparse, prep.ly, prep.lw, prep.fold, train.LEXICAL_FOLDS, seed)
    np.savez(path, weights=part.weights, bias=part.bias, oof=part.oof)
    print(f"  seed {seed}: lexical {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return part


def hold_precision(scorers: qj.CachedScorers, sets: dict[str, list]) -> dict[str, float]:
    out = {}
    for name in NEVER_TRAINED:
        rows = sets.get(name, [])
        if not rows:
            continue
        ours = scorers.parley([r.text for r in rows])
        y = np.array([any(v > 0 for v in r.labels.values()) for r in rows])
        held = np.any([ours[c] >= REVIEW_THRESHOLD for c in mq.RULE_CATEGORIES], axis=0)
        out[f"held at {REVIEW_THRESHOLD}: precision, {name}"] = (
            float((held & y).sum() / held.sum()) if held.any() else float("nan")
        )
        out[f"held at {REVIEW_THRESHOLD}: n, {name}"] = float(held.sum())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True, help="embedding cache (.npz)")
    parser.add_argument("--data", type=Path, default=public_dir())
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--decay", action="store_true", help="fit every head with train.LR_DECAY (converged)"
    )
    args = parser.parse_args(argv)
    train.LR_DECAY = args.decay
    args.work.mkdir(parents=True, exist_ok=True)
    sets = mq.test_sets(args.data, 1500)
    texts, probe = qj.eval_texts(sets)
    emb = dict(zip(texts, train.embed_all(texts, args.cache), strict=True))

    def figures(heads: Heads, lexical: Lexical) -> dict[str, float]:
        scorers = qj.CachedScorers(heads, lexical, emb)
        return {**qj.score(scorers, sets, probe), **hold_precision(scorers, sets)}

    results: dict[str, dict[str, float]] = {
        "shipped file": figures(Heads.load(), Lexical.load()),
    }
    prep = Prepared(args.data, args.cache)
    all_seeds = soup.seeds(train.SEED, args.seeds)
    parts = [seed_fit(prep, s, args.work) for s in all_seeds]
    seed_heads = []
    for s, part in zip(all_seeds, parts, strict=True):
        x = prep.x(np.clip(part.oof, -12, 12))
        heads = prep.heads(x, s)
        heads.save(args.work / f"heads_{s}{'_decay' if args.decay else ''}.npz")
        seed_heads.append(heads)
        results[f"seed {s}"] = figures(heads, lexical_of(part))
    for k in sorted({min(3, args.seeds), args.seeds}):
        mixed = soup.combine(parts[:k])
        x = prep.x(mixed.oof)
        lexical = lexical_of(mixed)
        oof_heads = prep.heads(x, train.SEED)
        results[f"soup {k}: oof"] = figures(oof_heads, lexical)
        pairs = [folded(h) for h in seed_heads[:k]]
        w_avg = np.mean([w for w, _ in pairs], axis=0)
        b_avg = np.mean([b for _, b in pairs], axis=0)
        results[f"soup {k}: avg"] = figures(prep.refit_platt(x, w_avg, b_avg), lexical)
        w_oof, b_oof = folded(oof_heads)
        both = prep.refit_platt(x, (w_avg + w_oof) / 2, (b_avg + b_oof) / 2)
        results[f"soup {k}: both"] = figures(both, lexical)
        print(f"  soup {k} scored", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(table(results, [f"seed {s}" for s in all_seeds]))
    return 0


def table(results: dict[str, dict[str, float]], seed_names: list[str]) -> str:
    columns = ["shipped file", "seeds: mean (range)"] + [n for n in results if n.startswith("soup")]
    lines = ["| figure | " + " | ".join(columns) + " |", "| --- |" + " ---: |" * len(columns)]
    base = results["shipped file"]
    for metric in base:
        values = [results[s][metric] for s in seed_names]
        fmt = "{:.1f}" if metric.startswith("idiom") or ": n," in metric else "{:.3f}"
        cells = [
            fmt.format(base[metric]),
            f"{fmt.format(statistics.fmean(values))} ({fmt.format(max(values) - min(values))})",
        ]
        cells += [fmt.format(results[n][metric]) for n in columns[2:]]
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    for n in columns[2:]:
        falls = [
            f"{m} {results[n][m] - base[m]:+.4f}"
            for m in base
            if qj.public(m) and not m.startswith("held") and results[n][m] < base[m]
        ]
        lines.append(
            f"\n{n} against the shipped file: "
            + ("holds" if not falls else "falls: ")
            + "; ".join(falls)
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
