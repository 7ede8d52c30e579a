"""Fit and check the similarity rule's cascade: ``python -m moderation.training.similarity_gate``.

Writes ``moderation/models/similarity_gate.npz`` (``moderation.detectors.similarity_gate``):

1. Texts: the training rows of the heads (``train.training_rows``: the own set's train
   split and the public sets' train splits, capped per set; never their test splits), plus
   an upper-case copy of one row in ten and a lower-case copy of another (people shout, and
   the encoder is case-sensitive). No list's sentences are among them: the map estimates
   embeddings, for any list.
2. Their real embeddings (the encoder) and their context-free means (``lone_rows``).
3. ``weights``/``offset``: ridge regression of the embedding on the context-free mean.
4. ``ratio``: checked on what the gate must never settle, on lists it was not fitted for.
   For every list (the shipped ``platform-circumvention`` list and the three of
   ``data/similarity_lists_eval.jsonl``) and every text (the list's own sentences and
   ``variants`` of them, its paraphrases and hard negatives, and ordinary chat: the own set,
   the functional and multilingual probes and the public sets' test splits, 1,500 per set),
   the true best cosine with the list (the encoder) and the estimated one. ``ratio`` is the
   smallest ``estimate / true`` over the texts whose true cosine is at least ``MIN_GATED -
   MARGIN`` (shouted texts left out: the gate never settles them). The detector escalates a
   text whose estimate reaches ``ratio * (threshold - MARGIN) - HEADROOM``, so every checked
   text the encoder scores at ``threshold - MARGIN`` or more is escalated, with ``HEADROOM``
   to spare. The ratio fitted without each list in turn is printed with that list's misses
   (none), and the share of chat settled at several thresholds.

Reproducible (no randomness; the same data gives the same file up to float rounding).
Reads neither ``text_heads.npz`` nor ``text_lexical.npz``. ``--cache FILE`` keeps the
embeddings between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from moderation.defaults import PLATFORM_CIRCUMVENTION
from moderation.detectors.similarity_gate import (
    HEADROOM,
    MARGIN,
    MIN_GATED,
    MODEL_PATH,
    SimilarityGate,
    context_free_mean,
    fit,
    lone_rows,
    shouted,
)
from moderation.training.datasets import EVAL_ONLY_SETS, TRAINING_SETS, own_set, public_dir

DATA = Path(__file__).resolve().parent / "data"
#: Ridge penalty (times the number of rows).
RIDGE = 1e-4

F32 = npt.NDArray[np.float32]
Embed = Callable[[list[str]], F32]


@dataclass(frozen=True)
class EvalList:
    """A sentences list and texts that must reach it (paraphrases) or not (negatives)."""

    id: str
    sentences: tuple[str, ...]
    paraphrases: tuple[str, ...]
    negatives: tuple[str, ...]


def variants(sentence: str) -> list[str]:
    """Forms of a listed sentence a user might send: shouted, lower-case, without
    punctuation, with a greeting or a tail."""
    bare = re.sub(r"[^\w\s]", "", sentence)
    return [
        sentence.upper(),
        sentence.lower(),
        bare,
        sentence.rstrip("?!.") + "!!",
        "hey " + sentence,
        "ok so " + sentence + " thanks",
        sentence + " pls",
        "Hi! " + sentence.capitalize(),
    ]


def eval_lists() -> list[EvalList]:
    """The shipped list (with the circumvention eval set) and the made-up ones."""
    circ = [
        json.loads(line)
        for line in (DATA / "platform_circumvention_eval.jsonl").read_text("utf-8").splitlines()
    ]
    out = [
        EvalList(
            "platform-circumvention",
            PLATFORM_CIRCUMVENTION,
            tuple(r["text"] for r in circ if r["label"]),
            tuple(r["text"] for r in circ if not r["label"]),
        )
    ]
    for line in (DATA / "similarity_lists_eval.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        out.append(
            EvalList(
                row["list"],
                tuple(row["sentences"]),
                tuple(row["paraphrases"]),
                tuple(row["negatives"]),
            )
        )
    return out


def _probe(name: str) -> Iterator[str]:
    """The texts of a probe file (``{g}`` filled with its groups)."""
    groups: list[str] = []
    for raw in (DATA / name).read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        if line.startswith("groups:"):
            groups = [g.strip() for g in line[len("groups:") :].split("|")]
        elif "{g}" in line:
            yield from (line.replace("{g}", g) for g in groups)
        else:
            yield line


def chat_texts(data_dir: Path, per_set: int = 1500) -> list[str]:
    """Ordinary chat for the check: the own set, the probes and the public test splits
    (the first ``per_set`` by hash of each set, under 1,000 characters)."""
    texts = [e.text for e in own_set()]
    texts += list(_probe("functional_eval.txt")) + list(_probe("multilingual_eval.txt"))
    for loader in TRAINING_SETS + EVAL_ONLY_SETS:
        try:
            rows = [e.text for e in loader(data_dir) if e.split == "test" and len(e.text) < 1000]
        except OSError as exc:
            print(f"  {loader.__name__}: {exc}", file=sys.stderr)
            continue
        rows.sort(key=lambda t: hashlib.sha1(t.encode()).hexdigest())
        texts += rows[:per_set]
    return list(dict.fromkeys(texts))


def training_texts(data_dir: Path) -> list[str]:
    from moderation.training.train import training_rows

    texts = [e.text for e in training_rows(data_dir)]
    extra = []
    for t in texts:
        h = int(hashlib.sha1(t.encode()).hexdigest(), 16) % 10
        if h == 0:
            extra.append(t.upper())
        elif h == 1:
            extra.append(t.lower())
    return list(dict.fromkeys(texts + extra))


def context_free(backend: object, tokens: Sequence[list[int]]) -> F32:
    """The context-free mean of every text, given its token ids."""
    distinct = sorted({i for ids in tokens for i in ids})
    rows = np.concatenate(
        [
            lone_rows(backend, np.asarray(distinct[s : s + 2048], dtype=np.int64))
            for s in range(0, len(distinct), 2048)
        ]
    )
    where = {t: i for i, t in enumerate(distinct)}
    return np.stack([context_free_mean(rows[[where[i] for i in ids]], backend) for ids in tokens])


@dataclass
class ListCheck:
    """One list's check: true and estimated best cosine of every text."""

    id: str
    texts: list[str]
    kinds: list[str]  # "sentence", "variant", "paraphrase", "negative", "chat"
    true: npt.NDArray[np.float64]
    est: npt.NDArray[np.float64]


def check(gate: SimilarityGate, embed: Embed, data_dir: Path) -> list[ListCheck]:
    """Every list's true and estimated best cosines over its texts and ordinary chat."""
    chat = chat_texts(data_dir)
    lists = eval_lists()
    texts_of: list[dict[str, str]] = []
    for wl in lists:
        texts: dict[str, str] = {}
        for s in wl.sentences:
            texts.setdefault(s, "sentence")
            for v in variants(s):
                texts.setdefault(v, "variant")
        for p in wl.paraphrases:
            texts.setdefault(p, "paraphrase")
        for n in wl.negatives:
            texts.setdefault(n, "negative")
        for c in chat:
            texts.setdefault(c, "chat")
        texts_of.append(texts)
    every = list(dict.fromkeys(t for texts in texts_of for t in texts))
    vectors = embed(every)
    where = {t: i for i, t in enumerate(every)}
    distinct = {i for t in every for w in t[:1000].split() for i in gate.word_ids(w)}
    gate = SimilarityGate(gate.backend, gate.weights, gate.offset, gate.ratio, len(distinct) + 1)
    gate.keep([w for t in every for w in t[:1000].split()])
    est = np.stack([gate.estimate(t) for t in every])
    out = []
    for wl, texts in zip(lists, texts_of, strict=True):
        rows = [where[t] for t in texts]
        sentences = vectors[[where[s] for s in wl.sentences]]
        out.append(
            ListCheck(
                wl.id,
                list(texts),
                list(texts.values()),
                (vectors[rows] @ sentences.T).max(axis=1).astype(np.float64),
                (est[rows] @ sentences.T).max(axis=1).astype(np.float64),
            )
        )
    return out


def report(checks: Sequence[ListCheck], gate: SimilarityGate, threshold: float) -> bool:
    """Print, per list: the correlation of estimate and true cosine, the share of ordinary
    chat settled under a condition ``threshold``, and misses (texts the encoder scores at
    ``threshold - MARGIN`` or more that the gate would settle). True when there is none."""
    ok = True
    gate_at = gate.gate_threshold(threshold)
    assert gate_at is not None
    for c in checks:
        kinds = np.array(c.kinds)
        chat = kinds == "chat"
        loud = np.array([shouted(t) for t in c.texts])
        r = float(np.corrcoef(c.true, c.est)[0, 1])
        must = c.true >= threshold - MARGIN
        settled = (c.est < gate_at) & ~loud
        misses = int((must & settled).sum())
        ok = ok and misses == 0
        para = kinds == "paraphrase"
        print(
            f"  {c.id:<23} r={r:.3f}  chat settled {settled[chat].mean():6.1%} of {chat.sum()}"
            f"  must escalate {must.sum():4d}  misses {misses}"
            f"  paraphrases the encoder flags {(c.true[para] >= threshold).sum()}/{para.sum()}"
        )
    return ok


def fit_ratio(checks: Sequence[ListCheck]) -> float:
    """The largest ratio (3 places, rounded down) such that every checked text that is not
    shouted and that the encoder scores at ``MIN_GATED - MARGIN`` or more has an estimate of
    at least that ratio times its true cosine."""
    true = np.concatenate([c.true for c in checks])
    est = np.concatenate([c.est for c in checks])
    loud = np.concatenate([[shouted(t) for t in c.texts] for c in checks])
    must = (true >= MIN_GATED - MARGIN) & ~loud
    return float(np.floor(np.min(est[must] / true[must]) * 1000) / 1000)


def main(argv: Sequence[str] | None = None) -> int:
    from moderation.detectors.encoder import SharedEncoder
    from moderation.detectors.token_cache import tokens_of
    from moderation.training.train import embed_all

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=public_dir())
    p.add_argument("--cache", type=Path, default=None, help="embeddings cache (.npz)")
    p.add_argument("--out", type=Path, default=MODEL_PATH)
    args = p.parse_args(argv)

    encoder = SharedEncoder(threads=2)
    backend = encoder.backend()
    texts = training_texts(args.data)
    print(f"{len(texts)} training texts", file=sys.stderr)
    target = embed_all(texts, args.cache)
    tokens = tokens_of(backend.sp)
    word_ids = lru_cache(maxsize=None)(lambda w: tokens(w)[1:-1])
    bos, *_, eos = tokens(" ")
    m = context_free(
        backend, [[bos, *(i for w in t[:1000].split() for i in word_ids(w)), eos] for t in texts]
    )
    weights, offset = fit(m, target, RIDGE)
    weights = weights.astype(np.float16).astype(np.float32)  # as stored

    gate = SimilarityGate(backend, weights, offset, 0.0)
    checks = check(gate, lambda t: embed_all(t, args.cache), args.data)
    gate.ratio = fit_ratio(checks)
    print(f"ratio {gate.ratio} (margin {MARGIN}, headroom {HEADROOM}, from {MIN_GATED})")
    # the ratio is one number fitted on these texts; fitted without a list, does it hold there?
    for i, held in enumerate(checks):
        alone = SimilarityGate(backend, weights, offset, fit_ratio(checks[:i] + checks[i + 1 :]))
        print(f"without {held.id}: ratio {alone.ratio}; on it at 0.65:")
        report([held], alone, 0.65)
    ok = True
    for threshold in (0.6, 0.65, 0.75, 0.85):
        print(f"threshold {threshold} (escalated from {gate.gate_threshold(threshold):.3f}):")
        ok = report(checks, gate, threshold) and ok
    np.savez_compressed(
        args.out, weights=weights.astype(np.float16), offset=offset, ratio=np.float32(gate.ratio)
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
