"""What a message the cascade settles costs in moderation CPU, stage by stage, in-process.

With the local AI text rules on and ``aiCascade`` on, a clear text is settled by the lexical
stage (``moderation.detectors.head_detector``) and judged on the send path: the engine asks
``inline_for(..., text)`` (the gate runs there, its result goes to the score cache), then
``evaluate`` runs every enabled rule (keyword lists, spam, ``toxicity`` and ``scam`` reading
the cached result). This script runs that path on distinct texts, so the per-text caches do
not help, the way the server's gate calls it, and reports microseconds of CPU
(``time.process_time``) per text:

- ``engine``: ``inline_for`` + ``evaluate`` on an engine with the default rules plus
  ``ai-toxicity``, ``ai-harmful-content`` and ``ai-scam`` enabled, the cascade on (the
  server's ``P-AI-CASC``), empty score caches;
- then each stage of the lexical stage alone on the same texts: fold + tokenise, n-gram
  hashing, cheap features, lexical model, language check, gate estimates, result building;
  and the rest of ``evaluate`` (keyword and spam rules, the detectors reading the result).

Texts: the harmless rows of the public test sets (``moderation.training.datasets``, split
``test``, every label 0) and the throughput benchmark's texts (``bench/load.py``), each kept
only if the gate settles it (the settled path is what is measured), distinct, cut to the
first ``--n`` per corpus. The word caches of the n-gram hashing are warmed first on other
texts of the same corpus, as in a running server; the per-text caches are cleared before
every timing. ``--profile`` prints cProfile's top functions of the engine path.

    .venv/bin/python bench/cascade_cost.py [--n 2000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import AI_RULES, DEFAULT_AI_RULES

from moderation.defaults import default_lists, default_rules
from moderation.detectors import lexical as lexical_mod
from moderation.detectors.cascade import STAGE_LEXICAL, HeadResult
from moderation.detectors.heads import extra_features
from moderation.detectors.lexical import buckets_of_folded
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.signals import may_settle
from moderation.engine import Engine
from moderation.local_detectors import build_detectors
from moderation.normalize import fold, tokenize, variants
from moderation.rules import parse_list, parse_rule
from moderation.training.datasets import EVAL_ONLY_SETS, TRAINING_SETS, own_set, public_dir
from moderation.types import MessageView, ReceiverView, UserView


def build_engine(models: ModelRegistry, *, ai: bool = True) -> Engine:
    """The server's engine under ``P-AI-CASC``: default rules, AI rules on, cascade on
    (``ai=False``: ``P-NORMAL``, the default rules without the AI rules)."""
    lists = [parse_list(b) for b in default_lists()]
    rules = [
        parse_rule(
            {**b, "enabled": True}
            if ai and b["id"] in AI_RULES
            else {**b, "enabled": False}
            if not ai and b["id"] in DEFAULT_AI_RULES
            else b
        )
        for b in default_rules()
    ]
    return Engine(rules, {wl.id: wl for wl in lists}, build_detectors(models), cascade=ai)


def view(text: str, i: int) -> MessageView:
    return MessageView(
        id=i,
        conversation_id="alice_user_bob",
        category="message",
        message_type="text",
        text=text,
        data=None,
        sender=UserView("alice", "Alice", "user", (), 1_000),
        receiver=ReceiverView("user", "bob", "Bob", (), None, 1_000),
        sent_at=1_764_000_000,
    )


def harmless_test_rows(data: Path) -> list[str]:
    """Distinct harmless texts of the test splits (every label 0), in a fixed order."""
    out: dict[str, None] = {}
    rows = [e for e in own_set() if e.split == "test"]
    for loader in (*TRAINING_SETS, *EVAL_ONLY_SETS):
        try:
            rows.extend(e for e in loader(data) if e.split == "test")
        except FileNotFoundError:
            continue
    for e in rows:
        if not any(e.labels.values()) and e.text.strip():
            out.setdefault(e.text, None)
    return list(out)


def settled_only(texts: Sequence[str], models: ModelRegistry) -> list[str]:
    """The texts the toxicity detector's lexical stage settles."""
    from moderation.detectors.toxicity import ToxicityDetector

    detector = ToxicityDetector(models)
    out = [t for t in texts if detector.lexical_result(t) is not None]
    reset(models)
    return out


def reset(models: ModelRegistry) -> None:
    """Clear the per-text caches (score cache, cheap features)."""
    clear = getattr(models, "clear_text_caches", None)
    if clear is not None:
        clear()
    else:  # the older trees (``PYTHONPATH=...``)
        models.scores.clear()
        models._cheap.cache_clear()


def clear_word_caches() -> None:
    """Empty the per-word caches of the n-gram hashing (whichever this tree has)."""
    variants.cache_clear()
    for name in ("_chunk_buckets", "_token_buckets", "_word_buckets", "_pair_buckets"):
        cached = getattr(lexical_mod, name, None)
        if cached is not None:
            cached.cache_clear()


def ngram_ids(folded: str, words: list[str]) -> object:
    """``lexical.buckets_of_folded`` (it took the text's words too before it cached bigrams
    per chunk: this script also measures the older trees, ``PYTHONPATH=...``)."""
    try:
        return buckets_of_folded(folded)  # type: ignore[call-arg, unused-ignore]
    except TypeError:
        return buckets_of_folded(folded, words)  # type: ignore[call-arg, unused-ignore]


def cpu_us(fn: Callable[[], object], n: int, repeat: int, before: Callable[[], None]) -> float:
    """Best of ``repeat`` runs of ``fn`` (over n texts), in CPU microseconds per text."""
    best = float("inf")
    for _ in range(repeat):
        before()
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1e6 / n


def measure(
    name: str, texts: list[str], warm: list[str], models: ModelRegistry, args: argparse.Namespace
) -> None:
    engine = build_engine(models)
    keywords_only = build_engine(models, ai=False)
    heads, lexical, profanity = models.heads(), models.lexical(), models.profanity()
    views = [view(t, i) for i, t in enumerate(texts)]
    n = len(texts)

    def warm_words() -> None:
        """Per-text caches empty, word caches as a running server's (warmed on other texts)."""
        clear_word_caches()
        for t in warm:
            f = fold(t)
            ngram_ids(f, [k.text for k in tokenize(f)])
        reset(models)

    async def engine_path() -> None:
        for t, v in zip(texts, views, strict=True):
            if not engine.inline_for("message", "text", t):
                raise AssertionError(f"not settled: {t!r}")
            await engine.evaluate(v)

    def run_engine() -> None:
        asyncio.run(engine_path())

    async def warm_engine() -> None:
        for i, t in enumerate(warm):
            engine.inline_for("message", "text", t)
            await engine.evaluate(view(t, i))

    asyncio.run(warm_engine())  # first calls (imports, lazy compiles) stay out of the timings

    folded = [fold(t) for t in texts]
    tokens = [tokenize(f) for f in folded]
    words = [[k.text for k in ts] for ts in tokens]
    ids = [ngram_ids(f, w) for f, w in zip(folded, words, strict=True)]
    rest = [models.text_features(t) for t in texts]
    reset(models)

    def stage_fold() -> None:
        for t in texts:
            tokenize(fold(t))

    def stage_ngrams() -> None:
        for f, w in zip(folded, words, strict=True):
            ngram_ids(f, w)

    def stage_extra() -> None:
        for t, ts in zip(texts, tokens, strict=True):
            extra_features(t, profanity, ts)

    def stage_lexical() -> None:
        for i in ids:
            lexical.logits_of(i)

    def stage_may() -> None:
        for f, w in zip(folded, words, strict=True):
            may_settle(w, f)

    def stage_gate() -> None:
        for i, r in zip(ids, rest, strict=True):
            heads.settled_scores(i, r)

    settled = [heads.settled_scores(i, r) for i, r in zip(ids, rest, strict=True)]

    def stage_result() -> None:
        cats = heads.categories
        for s in settled:
            assert s is not None
            HeadResult(
                STAGE_LEXICAL, dict(zip(cats, [round(p, 4) for p in s.tolist()], strict=True))
            )

    async def split_path() -> tuple[float, float]:
        """CPU seconds in ``inline_for`` and in ``evaluate``, over all texts."""
        clock = time.process_time
        asked = judged = 0.0
        for t, v in zip(texts, views, strict=True):
            t0 = clock()
            engine.inline_for("message", "text", t)
            t1 = clock()
            await engine.evaluate(v)
            t2 = clock()
            asked += t1 - t0
            judged += t2 - t1
        return asked, judged

    def split_us() -> tuple[float, float]:
        best = (float("inf"), float("inf"))
        for _ in range(args.repeat):
            warm_words()
            asked, judged = asyncio.run(split_path())
            best = (min(best[0], asked), min(best[1], judged))
        return best[0] * 1e6 / n, best[1] * 1e6 / n

    async def keyword_path() -> None:
        for t, v in zip(texts, views, strict=True):
            keywords_only.inline_for("message", "text", t)
            await keywords_only.evaluate(v)

    asked_us, judged_us = split_us()
    rows: list[tuple[str, float]] = [
        ("keyword-only engine (P-NORMAL): inline_for + evaluate", cpu_us(lambda: asyncio.run(keyword_path()), n, args.repeat, warm_words)),
        ("engine: inline_for + evaluate (all of it)", cpu_us(run_engine, n, args.repeat, warm_words)),
        ("  of which inline_for (the lexical stage, cached per text)", asked_us),
        ("  of which evaluate (every rule; the AI ones read the cache)", judged_us),
        ("the lexical stage's parts, alone:", float("nan")),
        ("  fold + tokenise", cpu_us(stage_fold, n, args.repeat, warm_words)),
        ("  n-gram hashing (buckets)", cpu_us(stage_ngrams, n, args.repeat, warm_words)),
        ("  cheap features (profanity, links, money, urgency, caps)", cpu_us(stage_extra, n, args.repeat, warm_words)),
        ("  lexical model (7 logits)", cpu_us(stage_lexical, n, args.repeat, warm_words)),
        ("  language check (may_settle)", cpu_us(stage_may, n, args.repeat, warm_words)),
        ("  gate estimates (settled_scores)", cpu_us(stage_gate, n, args.repeat, warm_words)),
        ("  result building (HeadResult)", cpu_us(stage_result, n, args.repeat, warm_words)),
    ]  # fmt: skip
    mean_len = sum(map(len, texts)) / max(n, 1)
    print(f"\n{name}: {n} distinct settled texts, mean {mean_len:.0f} characters")
    print(f"| {'stage':<58} | {'us/text':>8} |")
    print(f"| {'-' * 58} | {'-' * 8}:|")
    for label, us in rows:
        print(f"| {label:<58} | {'' if us != us else f'{us:.1f}':>8} |")
    print(f"AI rules' share (engine - keyword-only): {rows[1][1] - rows[0][1]:.1f} us/text")
    if args.profile:
        warm_words()
        prof = cProfile.Profile()
        prof.enable()
        run_engine()
        prof.disable()
        pstats.Stats(prof).sort_stats(args.profile).print_stats(40)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="settled texts per corpus")
    p.add_argument("--repeat", type=int, default=3, help="timings per stage (best kept)")
    p.add_argument(
        "--profile", default="", help="cProfile the engine path, sorted by this (tottime, cumtime)"
    )
    p.add_argument("--data", type=Path, default=public_dir(), help="the public sets' folder")
    args = p.parse_args()
    from load import make_texts

    models = ModelRegistry()
    corpora = {
        "harmless test-set rows": harmless_test_rows(args.data),
        "bench/load.py texts": make_texts(),
    }
    for name, texts in corpora.items():
        settled = settled_only(texts, models)
        measure(name, settled[: args.n], settled[args.n : args.n * 2], models, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
