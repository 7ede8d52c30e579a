"""What the similarity rule (``platform-circumvention``) costs per message in CPU, before and
after its cascade stage (``moderation.detectors.similarity_gate``), in-process.

- ``encoder``: every text embedded by the encoder in batches of 32 (the server's
  micro-batches under load: the cheapest the encoder gets), then compared with the list;
  what the rule cost on every message before the cascade (and costs with ``aiCascade`` off).
- ``gate``: the cascade's first stage on every text (``SimilarityDetector`` as ``detect``
  runs it with the cascade on: the estimate and the comparison), then the encoder, in
  batches of 32, for the texts it escalates; the share it settles; and the first stage
  alone again on the same texts, every token now known (``tokens known``).

Texts (distinct; the per-text caches never help): the throughput benchmark's
(``bench/load.py``), the project's own labelled set, and the public sets' harmless test rows
(``cascade_cost.harmless_test_rows``). The last ``--n`` texts of each corpus (at most half
of it) are measured; the ones before warm the per-word and per-token caches (as a running
server's are), and ``new tokens`` is how many token rows the gate still computed per
measured text (30-150 us each: the first-sight cost). CPU is ``time.process_time`` of this
process (one thread).

    .venv/bin/python bench/similarity_cost.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cascade_cost import harmless_test_rows
from harness import loadavg
from load import make_texts

from moderation.defaults import SIMILARITY_THRESHOLD, default_lists
from moderation.detectors.model_registry import ModelRegistry
from moderation.detectors.similarity import SimilarityDetector
from moderation.training.datasets import own_set, public_dir

BATCH = 32


def measure(detector: SimilarityDetector, texts: list[str]) -> dict[str, float]:
    """CPU microseconds per text, encoder only and gate first; the share settled."""
    wl = next(w for w in detector._prepared.values() if w.id == "platform-circumvention")
    vectors = detector._lists[id(wl)][1]
    encoder = detector.encoder
    encoder._cache.clear()
    start = time.process_time()
    for i in range(0, len(texts), BATCH):
        (encoder.encode(texts[i : i + BATCH]) @ vectors.T).max(axis=1)
    before = time.process_time() - start
    encoder._cache.clear()
    gate = detector.gate()
    if gate is not None:
        gate.counts["misses"] = 0
    start = time.process_time()
    escalated = [
        t for t in texts if detector._settled(t, wl, vectors, SIMILARITY_THRESHOLD) is None
    ]
    gate_only = time.process_time() - start
    for i in range(0, len(escalated), BATCH):
        (encoder.encode(escalated[i : i + BATCH]) @ vectors.T).max(axis=1)
    after = time.process_time() - start
    detector._decided.clear()  # the same texts again, every token now known
    start = time.process_time()
    for t in texts:
        detector._settled(t, wl, vectors, SIMILARITY_THRESHOLD)
    known = time.process_time() - start
    n = len(texts)
    return {
        "encoder": before / n * 1e6,
        "gate": after / n * 1e6,
        "gate_stage": gate_only / n * 1e6,
        "known": known / n * 1e6,
        "settled": 1 - len(escalated) / n,
        "new_tokens": misses(detector) / n,
    }


def misses(detector: SimilarityDetector) -> int:
    gate = detector.gate()
    return 0 if gate is None else gate.counts["misses"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="texts measured per corpus")
    args = p.parse_args()
    print(f"load before: {loadavg()}")
    models = ModelRegistry()
    detector = SimilarityDetector(models)
    detector.encoder.load()
    from moderation.rules import parse_list

    lists = {wl.id: wl for wl in (parse_list(b) for b in default_lists())}
    detector.prepare(lists)
    import asyncio

    asyncio.run(detector.vectors(lists["platform-circumvention"]))
    public = harmless_test_rows(public_dir())
    corpora = {
        "bench/load.py texts": make_texts(seed=7, count=4 * args.n),
        "own labelled set": list(dict.fromkeys(e.text for e in own_set())),
        "public harmless test rows": [t for t in public if len(t) < 1000],
    }
    print(
        f"{'texts (warm)':<28} {'n':>6} {'encoder us':>11} {'gate+escalated us':>18}"
        f" {'gate stage us':>14} {'tokens known':>12} {'settled':>8} {'new tokens':>10} {'ratio':>6}"
    )
    for name, texts in corpora.items():
        n = min(args.n, len(texts) // 2)
        warm, measured = texts[:-n], texts[-n:]
        if not measured:
            continue
        detector.encoder.encode(warm)  # the token cache, as a running server's
        gate = detector.gate()
        if gate is not None:
            gate.keep([w for t in warm for w in t.split()])
        r = measure(detector, measured)
        print(
            f"{f'{name} ({len(warm)})':<28} {len(measured):>6} {r['encoder']:>11.0f} {r['gate']:>18.0f}"
            f" {r['gate_stage']:>14.1f} {r['known']:>12.1f} {r['settled']:>8.1%} {r['new_tokens']:>10.2f}"
            f" {r['encoder'] / r['gate']:>6.1f}"
        )
    print(f"load after: {loadavg()}")


if __name__ == "__main__":
    main()
