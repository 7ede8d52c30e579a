"""Judge a change of the labelled data over several training seeds, not one retrain.

    .venv/bin/python bench/quality_judge.py --cache /tmp/emb.npz --work /tmp/judge \\
        --mix shipped= --mix D=20_harmless_violent_words.txt,21_violent_contrast.txt

A mix is ``name=file,file``: files of ``moderation/training/data/candidates/`` (or paths)
added to ``data/source/`` (``build_labelled --add``; nothing shipped is rewritten); ``name=``
alone is the shipped data. Each mix is trained once per seed (``--seeds``: the shipped seed,
then the next ones; the seed salts the lexical model's and the gate's order of rows and the
heads' initial weights) into ``--work``, and scored as ``bench/moderation_quality.py
--no-latency`` scores the full model: mean AUPRC per held-out set (the own test split is the
shipped set's, the same rows for every mix), the functional suite (held; held or flagged at
the shipped thresholds; every score at 0.5), the translated probe (recall at the shipped
thresholds, German, French and Spanish together), SimpleSafetyTests (recall at the shipped
thresholds: it has no negatives) and ``bench/idiom_probe.txt`` (harmless idioms held /
flagged; never trained on). A run already in ``--work`` is reused (by the mix's name: give a
changed mix a new name, and a new ``--work`` after the sources change).

The table gives each mix's mean over the seeds, the range (max - min over seeds), and the
change against the first mix, per seed (paired: the same seed, the same order of the rows the
two mixes share) and on the mean, and the adoption rule (``verdict``): a mix holds when no
public set's mean falls by more than the larger of the two mixes' ranges (at least 0.001).
``--json FILE`` writes every run's figures. ``--decay`` fits the heads with
``train.LR_DECAY`` (converged: where the constant-step fit stops moves some sets by up to 0.02,
and the ranges over the seeds shrink 3-5x with it; give it its own ``--work``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import moderation_quality as mq
import numpy as np

from moderation.defaults import REVIEW_THRESHOLD
from moderation.detectors.heads import Heads, feature_matrix
from moderation.detectors.lexical import Lexical
from moderation.detectors.model_registry import shared_models
from moderation.training import build_labelled, train
from moderation.training.datasets import Example, public_dir

CANDIDATES = build_labelled.DATA / "candidates"
PROBE = Path(__file__).resolve().parent / "idiom_probe.txt"

Figures = dict[str, float]
#: Figures a stored run must have to be reused (older runs are scored again, not retrained).
FIGURES = ("simplesafetytests violence: recall", "idiom probe: held")
MIN_SPREAD = 0.001


class CachedScorers(mq.Scorers):
    """The bench's scorer for one trained model, with embeddings computed once (``train``'s
    cache). The full model only (the cascade's columns repeat it)."""

    def __init__(self, heads: Heads, lexical: Lexical, emb: dict[str, np.ndarray]) -> None:
        self.full = True
        self.escalated = {}
        self.compared = []
        self.heads = heads
        self.lexical = lexical
        self.models = shared_models()
        self.profanity = self.models.profanity()
        self.apc = None
        self.emb = emb

    def both(
        self, texts: Sequence[str], *, name: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        emb = np.stack([self.emb[t] for t in texts]) if texts else np.zeros((0, 512), np.float32)
        scores = self.heads.scores(feature_matrix(texts, emb, self.lexical, self.profanity))
        out = {c: scores[:, i] for i, c in enumerate(self.heads.categories)}
        out["any_harm"] = np.max(np.stack([out[c] for c in mq.ANY_HARM]), axis=0)
        return out, out


def eval_texts(sets: dict[str, list[Example]]) -> tuple[list[str], list[str]]:
    probe = [
        line.strip()
        for line in PROBE.read_text("utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    texts = [r.text for rows in sets.values() for r in rows]
    texts += [t for _, t, _ in mq.read_probe(mq.DATA / "functional_eval.txt")]
    texts += [t for _, t, _ in mq.read_probe(mq.DATA / "multilingual_eval.txt")]
    return list(dict.fromkeys(texts + probe)), probe


def score(scorers: CachedScorers, sets: dict[str, list[Example]], probe: list[str]) -> Figures:
    out: Figures = {}
    with contextlib.redirect_stdout(io.StringIO()):
        summary = mq.evaluate(scorers, sets)
    for name in dict.fromkeys(s[0] for s in summary):
        values = [s[2] for s in summary if s[0] == name and not math.isnan(s[2])]
        if values:
            out[name] = statistics.fmean(values)
    out["mean of every set x category"] = statistics.fmean(
        s[2] for s in summary if not math.isnan(s[2])
    )
    # SimpleSafetyTests has positives only (no AUPRC): recall at the shipped threshold, as the
    # bench reports it
    for c in ("self_harm", "violence"):
        unsafe = [r.text for r in sets.get("simplesafetytests", []) if c in r.labels]
        if unsafe:
            hit = scorers.parley(unsafe)[c] >= mq.THRESHOLDS.get(c, 0.9)
            out[f"simplesafetytests {c}: recall"] = float(hit.mean())
    rows = mq.read_probe(mq.DATA / "functional_eval.txt")
    ours = scorers.parley([t for _, t, _ in rows])
    y = np.array([p for _, _, p in rows])
    cats = mq.RULE_CATEGORIES
    held = np.any([ours[c] >= REVIEW_THRESHOLD for c in cats], axis=0)
    flagged = np.any([ours[c] >= mq.THRESHOLDS[c] for c in cats], axis=0)
    half = np.any([ours[c] >= 0.5 for c in cats], axis=0)
    out["functional: held"] = float((held == y).mean())
    out["functional: held or flagged"] = float((flagged == y).mean())
    out["functional: scores at 0.5"] = float((half == y).mean())
    lang = [(b, t, p) for b, t, p in mq.read_probe(mq.DATA / "multilingual_eval.txt")]
    other = [(t, p) for b, t, p in lang if b.split("_")[0] in ("de", "fr", "es") and p]
    if other:
        s = scorers.parley([t for t, _ in other])
        hit = np.any([s[c] >= mq.THRESHOLDS[c] for c in cats], axis=0)
        out["translated probe: recall (de, fr, es)"] = float(hit.mean())
    p = scorers.parley(probe)
    out["idiom probe: held"] = float(np.any([p[c] >= REVIEW_THRESHOLD for c in cats], axis=0).sum())
    out["idiom probe: held or flagged"] = float(
        np.any([p[c] >= mq.THRESHOLDS[c] for c in cats], axis=0).sum()
    )
    return out


def build_mix(files: Sequence[str], out: Path) -> None:
    paths = [Path(f) if "/" in f else CANDIDATES / f for f in files]
    with contextlib.redirect_stderr(io.StringIO()):
        build_labelled.main([*(a for p in paths for a in ("--add", str(p))), "--out", str(out)])


def run(
    mix: str, files: Sequence[str], seed: int, work: Path, cache: Path, data: Path
) -> tuple[Path, Path]:
    """Train ``mix`` with ``seed`` into ``work`` (unless there already); the model files."""
    folder = work / mix / str(seed)
    heads, lexical = folder / "text_heads.npz", folder / "text_lexical.npz"
    if heads.exists() and lexical.exists():
        return heads, lexical
    folder.mkdir(parents=True, exist_ok=True)
    own = folder / "labelled.jsonl"
    build_mix(files, own)
    print(f"training {mix} seed {seed}", file=sys.stderr)
    log = io.StringIO()
    with contextlib.redirect_stderr(log):
        train.train(data, heads, cache, lexical, own=own, seed=seed)
    (folder / "train.log").write_text(log.getvalue())
    return heads, lexical


def table(results: dict[str, dict[int, Figures]]) -> str:
    mixes = list(results)
    base = mixes[0]
    metrics = list(dict.fromkeys(m for r in results[base].values() for m in r))
    lines = [
        "| figure | "
        + " | ".join(
            f"{m}: mean (range)" if m == base else f"{m}: mean (range), change (per seed)"
            for m in mixes
        )
        + " |",
        "| --- |" + " ---: |" * len(mixes),
    ]
    for metric in metrics:
        cells = []
        for m in mixes:
            runs = results[m]
            values = [runs[s][metric] for s in sorted(runs) if metric in runs[s]]
            if not values:
                cells.append("-")
                continue
            mean, spread = statistics.fmean(values), max(values) - min(values)
            fmt = "{:.1f}" if metric.startswith("idiom") else "{:.3f}"
            cell = f"{fmt.format(mean)} ({fmt.format(spread)})"
            if m != base:
                seeds = [s for s in sorted(runs) if s in results[base]]
                diffs = [runs[s][metric] - results[base][s][metric] for s in seeds]
                cell += (
                    f", {statistics.fmean(diffs):+.3f} ("
                    + " ".join(f"{d:+.3f}" for d in diffs)
                    + ")"
                )
            cells.append(cell)
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    verdicts = [verdict(results, base, m) for m in mixes[1:]]
    lines.append("| no public set falls (the rule) | | " + " | ".join(verdicts) + " |")
    return "\n".join(lines)


#: Figures of public sets (the own test split, the probes and the suite are the project's).
def public(metric: str) -> bool:
    own = ("parley", "mean of", "functional", "translated", "idiom")
    return not metric.startswith(own)


def verdict(results: dict[str, dict[int, Figures]], base: str, mix: str) -> str:
    """The adoption rule: no public set's mean over the seeds falls by more than its spread,
    the larger range (max - min over the seeds) of the two mixes, and at least ``MIN_SPREAD``
    (the bench prints 3 decimals)."""
    falls = []
    for metric in results[base][next(iter(results[base]))]:
        if not public(metric):
            continue
        a = [r[metric] for r in results[base].values()]
        b = [r[metric] for r in results[mix].values()]
        spread = max(max(a) - min(a), max(b) - min(b), MIN_SPREAD)
        change = statistics.fmean(b) - statistics.fmean(a)
        if change < -spread:
            falls.append(f"{metric} {change:+.3f} < -{spread:.3f}")
    return "holds" if not falls else "falls: " + "; ".join(falls)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", action="append", required=True, help="name=file,file")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--work", type=Path, required=True, help="trained models go here")
    parser.add_argument("--cache", type=Path, required=True, help="embedding cache (.npz)")
    parser.add_argument("--data", type=Path, default=public_dir())
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--decay", action="store_true", help="converged heads (train.LR_DECAY)")
    args = parser.parse_args(argv)
    train.LR_DECAY = args.decay
    mixes = {
        name: [f for f in spec.split(",") if f]
        for name, spec in (m.split("=", 1) for m in args.mix)
    }
    seeds = [train.SEED + i for i in range(args.seeds)]
    sets = mq.test_sets(args.data, 1500)
    texts, probe = eval_texts(sets)
    vectors = train.embed_all(texts, args.cache)
    emb = dict(zip(texts, vectors, strict=True))
    results: dict[str, dict[int, Figures]] = {}
    for name, files in mixes.items():
        results[name] = {}
        for seed in seeds:
            done = args.work / name / str(seed) / "figures.json"
            if done.exists():
                figures = json.loads(done.read_text())
                if all(k in figures for k in FIGURES):
                    results[name][seed] = figures
                    continue
            heads, lexical = run(name, files, seed, args.work, args.cache, args.data)
            figures = score(
                CachedScorers(Heads.load(heads), Lexical.load(lexical), emb), sets, probe
            )
            done.write_text(json.dumps(figures, indent=1))
            results[name][seed] = figures
            print(
                f"  {name} seed {seed}: mean {figures['mean of every set x category']:.3f}",
                file=sys.stderr,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(
        f"seeds {seeds}; mixes: "
        + "; ".join(f"{n} = {', '.join(f) or 'shipped data'}" for n, f in mixes.items())
    )
    print()
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
