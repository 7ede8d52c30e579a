"""Quality and latency of the local AI text detectors, next to the baselines, in one run.

    .venv/bin/python bench/moderation_quality.py [--per-set 1500] [--data DIR]

Scores the held-out parts only: the project's own test split
(``moderation/training/data/parley_labelled.jsonl``, ``split == "test"``), the test splits of
the public sets used in training (fixed by ``moderation.training.datasets``) and the sets never
used in training (Jigsaw sample, XSTest, SimpleSafetyTests). Prints, per set and category,
AUPRC for the Parley heads, the keyword baseline (bundled profanity lists: 1 on a hit) and
alt-profanity-check (if installed: ``pip install alt-profanity-check``, a bench-only extra),
precision/recall at the shipped thresholds, then latency per message on one core (batch 1
and batch 32).

Parley's scores are the full model's, as the detectors report them by default (the encoder on
every row); ``--cascade`` reports the cascade's instead (the ``aiCascade`` setting: the gate
settles what it may at the lexical stage, the encoder scores the rest;
``moderation.detectors.head_detector``). Either way a table sets the cascade next to the full
model per set (mean AUPRC, the share of rows the encoder sees, decisions changed at the shipped
thresholds). Also: the functional hate-speech suite
(``moderation/training/data/functional_eval.txt``) and the German, French and Spanish probe
(``moderation/training/data/multilingual_eval.txt``), both written for this project and never
trained on.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from moderation.defaults import REVIEW_THRESHOLD, SCAM_THRESHOLDS, SIMILARITY_THRESHOLD
from moderation.defaults import TOXICITY_THRESHOLDS as TOX_THRESHOLDS
from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.heads import EMBEDDING_DIM, Heads, feature_matrix
from moderation.detectors.keywords import find
from moderation.detectors.lexical import buckets
from moderation.detectors.model_registry import shared_models
from moderation.normalize import fold, tokenize
from moderation.rules import TOXICITY_CATEGORIES
from moderation.training.datasets import (
    EVAL_ONLY_SETS,
    TRAINING_SETS,
    Example,
    own_set,
    public_dir,
)
from moderation.training.train import average_precision

ANY_HARM = tuple(c for c in TOXICITY_CATEGORIES if c not in ("toxicity", "obscene"))
MIN_POSITIVES = 5
THRESHOLDS = {**TOX_THRESHOLDS, **SCAM_THRESHOLDS}


def test_sets(data: Path, per_set: int) -> dict[str, list[Example]]:
    rng = random.Random(7)
    sets: dict[str, list[Example]] = {
        "parley (own test)": [e for e in own_set() if e.split == "test"]
    }
    for loader in (*TRAINING_SETS, *EVAL_ONLY_SETS):
        rows = [e for e in loader(data) if e.split == "test"]
        by_source: dict[str, list[Example]] = {}
        for e in rows:
            by_source.setdefault(e.source, []).append(e)
        for source, items in by_source.items():
            if len(items) > per_set:
                items = rng.sample(items, per_set)
            sets[source] = items
    return sets


class Scorers:
    def __init__(self, *, full: bool = True) -> None:
        self.full = full
        self.escalated: dict[str, tuple[int, int]] = {}
        #: (set, category, AUPRC full, AUPRC cascade, positives and negatives the full model
        #: flags at the shipped threshold and the cascade does not)
        self.compared: list[tuple[str, str, float, float, int, int]] = []
        self.encoder = SharedEncoder(threads=1)
        self.heads = Heads.load()
        self.models = shared_models()
        self.lexical = shared_models().lexical()
        self.profanity = shared_models().profanity()
        try:
            from profanity_check import predict_prob  # type: ignore[import-untyped]

            self.apc: Callable[[list[str]], np.ndarray] | None = predict_prob
        except Exception:
            self.apc = None

    def parley(
        self, texts: Sequence[str], *, full: bool | None = None, name: str = ""
    ) -> dict[str, np.ndarray]:
        """What the detectors report (the same encoder, features, lexical model and heads):
        with ``full`` (the default, as a server without ``aiCascade``) the encoder on every
        text, else the cascade's scores. ``name`` records the share of texts the encoder sees
        with the cascade under that name."""
        both = self.both(texts, name=name)
        return both[0] if (self.full if full is None else full) else both[1]

    def both(
        self, texts: Sequence[str], *, name: str = ""
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The full model's scores and the cascade's (the gate settles what it may at the
        lexical stage, the encoder scores the rest; ``moderation.detectors.head_detector``)."""
        emb = self.encoder.encode(texts)
        x = feature_matrix(texts, emb, self.lexical, self.profanity)
        full = self.heads.scores(x)
        probs = full.copy()
        up = np.ones(len(texts), dtype=bool)
        for i, t in enumerate(texts):
            if not self.models.text_may_settle(t):
                continue
            settled = self.heads.settled_scores(buckets(t), x[i, EMBEDDING_DIM:])
            if settled is not None and t.strip():
                probs[i], up[i] = settled, False
        if name:
            self.escalated[name] = (int(up.sum()), len(texts))
        outs = []
        for p in (full, probs):
            out = {c: p[:, i] for i, c in enumerate(self.heads.categories)}
            out["any_harm"] = np.max(np.stack([out[c] for c in ANY_HARM]), axis=0)
            outs.append(out)
        return outs[0], outs[1]

    def keywords(self, texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [float(bool(find(self.profanity, tokenize(fold(t))))) for t in texts], dtype=np.float64
        )


def evaluate(
    scorers: Scorers, sets: dict[str, list[Example]]
) -> list[tuple[str, str, float, float, float]]:
    print("\n## Quality: AUPRC per set and category (held-out rows only)\n")
    print(
        "| set | category | n | pos | Parley | keywords | alt-profanity-check | P@thr | R@thr | thr |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    summary: list[tuple[str, str, float, float, float]] = []
    for name, rows in sets.items():
        texts = [r.text for r in rows]
        full, cascade = scorers.both(texts, name=name)
        ours = full if scorers.full else cascade
        kw = scorers.keywords(texts)
        apc = scorers.apc(texts).astype(np.float64) if scorers.apc else None
        categories = sorted({c for r in rows for c in r.labels}, key=lambda c: (c != "toxicity", c))
        for c in categories:
            labelled = [i for i, r in enumerate(rows) if c in r.labels]
            y = np.array([rows[i].labels[c] for i in labelled], dtype=np.float64)
            if y.sum() < MIN_POSITIVES or c not in ours:
                continue
            s = ours[c][labelled].astype(np.float64)
            ap_ours = average_precision(y, s)
            ap_kw = average_precision(y, kw[labelled])
            ap_apc = average_precision(y, apc[labelled]) if apc is not None else math.nan
            thr = THRESHOLDS.get(c, 0.9)
            pred = s >= thr
            s_full, s_cascade = (o[c][labelled].astype(np.float64) for o in (full, cascade))
            # the cascade only lowers scores (a settled text's are below every threshold)
            moved = (s_full >= thr) & (s_cascade < thr)
            scorers.compared.append(
                (
                    name,
                    c,
                    average_precision(y, s_full),
                    average_precision(y, s_cascade),
                    int((moved & (y > 0)).sum()),
                    int((moved & (y == 0)).sum()),
                )
            )
            precision = (pred & (y > 0)).sum() / max(pred.sum(), 1)
            recall = (pred & (y > 0)).sum() / y.sum()
            p_text = f"{precision:.2f}" if pred.sum() else "-"
            fmt = lambda v: "-" if math.isnan(v) else f"{v:.3f}"  # noqa: E731
            print(
                f"| {name} | {c} | {len(y)} | {int(y.sum())} | {fmt(ap_ours)} | {fmt(ap_kw)} |"
                f" {fmt(ap_apc)} | {p_text} | {recall:.2f} | {thr:.2f} |"
            )
            summary.append((name, c, ap_ours, ap_kw, ap_apc))
    return summary


def sweep(scorers: Scorers, sets: dict[str, list[Example]]) -> None:
    """Precision and recall per category at several thresholds, own test split only."""
    rows = sets["parley (own test)"]
    ours = scorers.parley([r.text for r in rows])
    print("\n## Threshold sweep on the own test split: precision/recall\n")
    grid = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
    print("| category | " + " | ".join(f"{t:.2f}" for t in grid) + " |")
    print("| --- |" + " ---: |" * len(grid))
    for c in sorted({c for r in rows for c in r.labels}):
        y = np.array([r.labels[c] for r in rows]) > 0
        cells = []
        for t in grid:
            pred = ours[c] >= t
            p = (pred & y).sum() / max(pred.sum(), 1)
            cells.append(f"{p:.2f}/{(pred & y).sum() / max(y.sum(), 1):.2f}")
        print(f"| {c} | " + " | ".join(cells) + " |")


def overall(summary: list[tuple[str, str, float, float, float]]) -> None:
    print("\n## Overall (mean AUPRC over the rows above that have negatives)\n")
    print("| set | Parley | keywords | alt-profanity-check |")
    print("| --- | ---: | ---: | ---: |")
    names = list(dict.fromkeys(s[0] for s in summary))
    all_rows = []
    for name in names:
        rows = [s for s in summary if s[0] == name and not math.isnan(s[2])]
        if not rows:
            continue
        all_rows.extend(rows)
        means = [
            statistics.fmean(r[k] for r in rows)
            if not any(math.isnan(r[k]) for r in rows)
            else math.nan
            for k in (2, 3, 4)
        ]
        print(
            f"| {name} | " + " | ".join("-" if math.isnan(m) else f"{m:.3f}" for m in means) + " |"
        )
    means = [
        statistics.fmean(r[k] for r in all_rows if not math.isnan(r[k]))
        for k in (2, 3, 4)
        if any(not math.isnan(r[k]) for r in all_rows)
    ]
    print("| all | " + " | ".join(f"{m:.3f}" for m in means) + " |")


def safety_recall(scorers: Scorers, sets: dict[str, list[Example]]) -> None:
    rows = sets.get("simplesafetytests")
    if not rows:
        return
    print("\n## SimpleSafetyTests (positives only): recall at the shipped threshold\n")
    print("| harm area | n | Parley | keywords | alt-profanity-check (0.5) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for c in ("self_harm", "violence", "scam"):
        texts = [r.text for r in rows if c in r.labels]
        if not texts:
            continue
        ours = scorers.parley(texts)[c] >= THRESHOLDS.get(c, 0.9)
        kw = scorers.keywords(texts) > 0
        apc = (scorers.apc(texts) >= 0.5).mean() if scorers.apc else math.nan
        print(f"| {c} | {len(texts)} | {ours.mean():.2f} | {kw.mean():.2f} | {apc:.2f} |")


def similarity(scorers: Scorers) -> None:
    """The default platform-circumvention list on its eval set (paraphrases, hard negatives)."""
    import json

    from moderation.defaults import PLATFORM_CIRCUMVENTION

    path = Path(__file__).resolve().parents[1] / "moderation/training/data"
    rows = [json.loads(line) for line in (path / "platform_circumvention_eval.jsonl").open()]
    negatives = [json.loads(line)["text"] for line in (path / "parley_labelled.jsonl").open()]
    negatives = [t for t in negatives if t]  # every own row is off-topic for this list
    texts = [r["text"] for r in rows] + negatives
    y = np.array([r["label"] for r in rows] + [0] * len(negatives), dtype=np.float64)
    items = scorers.encoder.encode(list(PLATFORM_CIRCUMVENTION))
    s = (scorers.encoder.encode(texts) @ items.T).max(axis=1).astype(np.float64)
    pred = s >= SIMILARITY_THRESHOLD
    tp = int((pred & (y > 0)).sum())
    print("\n## Similarity: platform-circumvention list\n")
    print(
        f"{int(y.sum())} paraphrases, {len(y) - int(y.sum())} negatives (13 topical + the own set):"
        f" AUPRC {average_precision(y, s):.3f}; at threshold {SIMILARITY_THRESHOLD}: precision"
        f" {tp / max(int(pred.sum()), 1):.2f}, recall {tp / y.sum():.2f}"
    )


DATA = Path(__file__).resolve().parents[1] / "moderation/training/data"
#: The categories of the AI rules a fresh server would enable (``ai-toxicity`` and
#: ``ai-harmful-content``): what "the AI rules flag it" means below.
RULE_CATEGORIES = (
    "toxicity",
    "severe_toxicity",
    "insult",
    "identity_attack",
    "threat",
    "sexual",
    "self_harm",
    "violence",
)


def cascade_share(scorers: Scorers) -> None:
    print(
        "\n## The cascade (`aiCascade`) next to the full model: mean AUPRC per set, the share of"
        " rows the encoder still sees, and the rows the full model flags at the shipped thresholds"
        " that the cascade does not (it flags none that the full model does not)\n"
    )
    print("| set | full | cascade | change | encoder sees | positives missed | negatives spared |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total_up = total = 0
    means_full: list[float] = []
    means_cascade: list[float] = []
    for name, (up, n) in scorers.escalated.items():
        total_up, total = total_up + up, total + n
        rows = [r for r in scorers.compared if r[0] == name and not math.isnan(r[2])]
        if not rows:
            continue
        f = statistics.fmean(r[2] for r in rows)
        c = statistics.fmean(r[3] for r in rows)
        means_full.extend(r[2] for r in rows)
        means_cascade.extend(r[3] for r in rows)
        print(
            f"| {name} | {f:.3f} | {c:.3f} | {c - f:+.3f} | {up / max(n, 1):.2f} |"
            f" {sum(r[4] for r in rows)} | {sum(r[5] for r in rows)} |"
        )
    f, c = statistics.fmean(means_full), statistics.fmean(means_cascade)
    print(f"| all | {f:.3f} | {c:.3f} | {c - f:+.3f} | {total_up / max(total, 1):.2f} | | |")
    mode = "the full model's (a server's default)" if scorers.full else "the cascade's"
    print(f"\n(the tables above and below report {mode} scores)")


def bench_texts_share(scorers: Scorers) -> None:
    """The share of the throughput benchmark's texts (``bench/load.py``) the gate settles."""
    from load import BLOCK_WORD, make_texts

    def settles(text: str) -> bool:
        rest = scorers.models.text_features(text)
        may = scorers.models.text_may_settle(text)
        return may and scorers.heads.settled_scores(buckets(text), rest) is not None

    texts = make_texts()
    settled = sum(settles(t) for t in texts)
    blocked = sum(settles(f"{t} {BLOCK_WORD}") for t in texts[:500])
    print(
        f"\nbench/load.py texts settled by the lexical stage: {settled}/{len(texts)}"
        f" ({settled / len(texts):.2f}); with the profanity word appended: {blocked}/500"
    )


def default_rules(scorers: Scorers, sets: dict[str, list[Example]]) -> None:
    """What the AI rules a fresh server enables do with each set: held for review (any of
    their categories at ``REVIEW_THRESHOLD``), or delivered and flagged (the band from the
    category's flag threshold up); a row counts as harmful when any of its labels is
    positive."""
    print(
        "\n## The default AI rules: held for review (any category >= "
        f"{REVIEW_THRESHOLD:.2f}) and flagged (the band below)\n"
    )
    print(
        "| set | rows | harmful | held: precision / recall (n) | held or flagged:"
        " precision / recall (n) | flag band alone: precision (n) |"
    )
    print("| --- | ---: | ---: | --- | --- | --- |")

    def cell(pred: np.ndarray, y: np.ndarray) -> str:
        n, tp = int(pred.sum()), int((pred & y).sum())
        return f"{tp / n:.2f} / {tp / max(int(y.sum()), 1):.2f} ({n})" if n else "- / 0.00 (0)"

    for name, rows in sets.items():
        ours = scorers.parley([r.text for r in rows])
        y = np.array([any(v > 0 for v in r.labels.values()) for r in rows])
        held = np.any([ours[c] >= REVIEW_THRESHOLD for c in RULE_CATEGORIES], axis=0)
        acted = held | np.any([ours[c] >= THRESHOLDS[c] for c in RULE_CATEGORIES], axis=0)
        band = acted & ~held
        nb = int(band.sum())
        flag = f"{int((band & y).sum()) / nb:.2f} ({nb})" if nb else "- (0)"
        print(
            f"| {name} | {len(y)} | {int(y.sum())} | {cell(held, y)} | {cell(acted, y)} | {flag} |"
        )


def read_probe(path: Path) -> list[tuple[str, str, bool]]:
    """(block, text, positive) rows of a probe file: ``groups: a | b`` fills ``{g}``;
    ``@ name hateful|harmful|not`` heads a block; ``#`` comments."""
    groups: list[str] = []
    out: list[tuple[str, str, bool]] = []
    block, positive = "", False
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("groups:"):
            groups = [g.strip() for g in line[len("groups:") :].split("|")]
        elif line.startswith("@"):
            block, label = line[1:].split()
            positive = label != "not"
        elif "{g}" in line:
            out.extend((block, line.replace("{g}", g), positive) for g in groups)
        else:
            out.append((block, line, positive))
    return out


def functional(scorers: Scorers) -> None:
    """Accuracy per functionality: "hateful" when the AI rules would act at the shipped
    thresholds; with the default profanity rule (keyword block) too; and every category's
    score thresholded at 0.5."""
    rows = read_probe(DATA / "functional_eval.txt")
    texts = [t for _, t, _ in rows]
    ours = scorers.parley(texts)
    held = np.any([ours[c] >= REVIEW_THRESHOLD for c in RULE_CATEGORIES], axis=0)
    ai = np.any([ours[c] >= THRESHOLDS[c] for c in RULE_CATEGORIES], axis=0)
    half = np.any([ours[c] >= 0.5 for c in RULE_CATEGORIES], axis=0)
    kw = scorers.keywords(texts) > 0
    apc = scorers.apc(texts) >= 0.5 if scorers.apc else np.zeros(len(texts), dtype=bool)
    y = np.array([p for _, _, p in rows])
    print("\n## Functional hate-speech suite (written for this project, never trained on)\n")
    print(
        "| functionality | hateful | n | keywords only | AI rules: held |"
        " AI rules: held or flagged | the same + profanity rule (the defaults) |"
        " scores at 0.5 | alt-profanity-check (0.5) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    preds = (kw, held, ai, ai | kw, half, apc)
    for b in dict.fromkeys(b for b, _, _ in rows):
        idx = np.array([i for i, (bb, _, _) in enumerate(rows) if bb == b])
        cells = [float((pred[idx] == y[idx]).mean()) for pred in preds]
        print(
            f"| {b} | {'yes' if y[idx[0]] else 'no'} | {len(idx)} | "
            + " | ".join(f"{v:.2f}" for v in cells)
            + " |"
        )
    print(
        f"| all | | {len(y)} | "
        + " | ".join(f"{float((pred == y).mean()):.2f}" for pred in preds)
        + " |"
    )
    print(f"\n(answering 'hateful' every time: {y.mean():.2f})")


def languages(scorers: Scorers) -> None:
    """The German, French and Spanish probe (and its English originals): AUPRC of the best
    rule category, precision/recall at the shipped thresholds."""
    rows = read_probe(DATA / "multilingual_eval.txt")
    print("\n## Languages: the translated probe (written for this project, never trained on)\n")
    print("| language | n | pos | AUPRC Parley | keywords | alt-profanity-check | P / R at thr |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for lang in dict.fromkeys(b.split("_")[0] for b, _, _ in rows):
        sub = [(t, p) for b, t, p in rows if b.split("_")[0] == lang]
        texts = [t for t, _ in sub]
        y = np.array([float(p) for _, p in sub])
        ours = scorers.parley(texts)
        best = np.max([ours[c] for c in RULE_CATEGORIES], axis=0).astype(np.float64)
        pred = np.any([ours[c] >= THRESHOLDS[c] for c in RULE_CATEGORIES], axis=0)
        apc = scorers.apc(texts).astype(np.float64) if scorers.apc else np.full(len(texts), np.nan)
        tp = int((pred & (y > 0)).sum())
        p_text = f"{tp / pred.sum():.2f}" if pred.sum() else "-"
        print(
            f"| {lang} | {len(y)} | {int(y.sum())} | {average_precision(y, best):.3f} |"
            f" {average_precision(y, scorers.keywords(texts)):.3f} |"
            f" {average_precision(y, apc):.3f} | {p_text} / {tp / max(y.sum(), 1):.2f} |"
        )


def latency(scorers: Scorers, sets: dict[str, list[Example]]) -> None:
    print("\n## Latency per message, one core (ms)\n")
    texts = [r.text for r in sets["parley (own test)"]] + [
        r.text for r in sets.get("convabuse", [])
    ]
    texts = list(dict.fromkeys(texts))[:256]
    print(
        f"{len(texts)} chat-length texts, mean {statistics.fmean(len(t) for t in texts):.0f} characters\n"
    )
    print("| scorer | batch 1 p50 | batch 1 p95 | batch 32 (amortised) |")
    print("| --- | ---: | ---: | ---: |")

    def fresh() -> None:
        scorers.encoder._cache.clear()

    def timed(fn: Callable[[list[str]], object], batch: int) -> tuple[float, float, float]:
        per: list[float] = []
        start_all = time.perf_counter()
        for i in range(0, len(texts), batch):
            chunk = texts[i : i + batch]
            start = time.perf_counter()
            fn(chunk)
            per.append((time.perf_counter() - start) * 1000 / len(chunk))
        total = (time.perf_counter() - start_all) * 1000 / len(texts)
        per.sort()
        return per[len(per) // 2], per[int(len(per) * 0.95)], total

    def ours(chunk: list[str]) -> object:
        fresh()
        return scorers.parley(chunk)

    scorers.parley(["warm up"])
    p50, p95, _ = timed(ours, 1)
    _, _, amort = timed(ours, 32)
    print(
        f"| Parley heads (encoder + lexical model + 14 heads) | {p50:.2f} | {p95:.2f} |"
        f" {amort:.2f} |"
    )

    def first_stage(chunk: list[str]) -> object:
        """The cascade's lexical stage as the detectors run it, uncached: n-grams, cheap
        features, the lexical model and the gate's estimates."""
        from moderation.detectors.heads import cheap_features

        for t in chunk:
            ids, rest, may = cheap_features(t, scorers.lexical, scorers.profanity)
            if may:
                scorers.heads.settled_scores(ids, rest)
        return None

    p50, p95, _ = timed(first_stage, 1)
    _, _, amort = timed(first_stage, 32)
    print(
        f"| the cascade's lexical stage (all of the above but the encoder, uncached) |"
        f" {p50:.2f} | {p95:.2f} | {amort:.2f} |"
    )
    p50, p95, _ = timed(scorers.lexical.logits, 1)
    _, _, amort = timed(scorers.lexical.logits, 32)
    print(
        f"| of which the lexical model (n-grams, hashing, 7 logits) | {p50:.2f} | {p95:.2f} | {amort:.2f} |"
    )
    p50, p95, _ = timed(scorers.keywords, 1)
    _, _, amort = timed(scorers.keywords, 32)
    print(f"| keywords (profanity lists) | {p50:.2f} | {p95:.2f} | {amort:.2f} |")
    if scorers.apc is not None:
        p50, p95, _ = timed(scorers.apc, 1)
        _, _, amort = timed(scorers.apc, 32)
        print(f"| alt-profanity-check | {p50:.2f} | {p95:.2f} | {amort:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description="local AI detector quality bench")
    parser.add_argument("--data", type=Path, default=public_dir())
    parser.add_argument(
        "--per-set", type=int, default=1500, help="rows sampled per public test set"
    )
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="also print a threshold sweep")
    parser.add_argument(
        "--cascade", action="store_true", help="report the cascade's scores (aiCascade on)"
    )
    args = parser.parse_args()
    scorers = Scorers(full=not args.cascade)
    if scorers.apc is None:
        print("alt-profanity-check not installed: its column stays empty", file=sys.stderr)
    sets = test_sets(args.data, args.per_set)
    summary = evaluate(scorers, sets)
    overall(summary)
    cascade_share(scorers)
    bench_texts_share(scorers)
    safety_recall(scorers, sets)
    default_rules(scorers, sets)
    functional(scorers)
    languages(scorers)
    similarity(scorers)
    if args.sweep:
        sweep(scorers, sets)
    if not args.no_latency:
        latency(scorers, sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())
