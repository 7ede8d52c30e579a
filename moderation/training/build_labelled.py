"""Rebuild ``data/parley_labelled.jsonl`` from the hand-written sources in ``data/source/``.

``python -m moderation.training.build_labelled``. Source format: ``@ label,label`` (or
``@ none``) sets the labels of the lines below it; a line starting with ``#`` is a comment;
every other non-empty line is a message.
A line with ``{g}`` is a template, filled with 4 of the group names in ``groups.txt``
(chosen by the line's hash). The split is a hash of the line (of the template for templated
lines): 25 % ``test``. Deterministic: the same sources give the same file.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SOURCE = DATA / "source"
OUT = DATA / "parley_labelled.jsonl"


def build() -> list[dict[str, object]]:
    groups = [
        g.strip() for g in (SOURCE / "groups.txt").read_text("utf-8").splitlines() if g.strip()
    ]
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in sorted(SOURCE.glob("[0-9]*.txt")):
        labels: list[str] = []
        for raw in path.read_text("utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                spec = line[1:].strip()
                labels = [] if spec == "none" else spec.split(",")
                continue
            h = int(hashlib.sha1(line.encode()).hexdigest(), 16)
            split = "test" if h % 100 < 25 else "train"
            template = "{g}" in line
            if template:
                start = h % len(groups)
                texts = [
                    line.replace("{g}", groups[(start + k * 3) % len(groups)]) for k in range(4)
                ]
            else:
                texts = [line]
            for text in texts:
                if text in seen:
                    continue
                seen.add(text)
                rows.append(
                    {"text": text, "labels": sorted(labels), "split": split, "template": template}
                )
    return rows


def main() -> int:
    rows = build()
    with OUT.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = Counter(label for row in rows for label in row["labels"])  # type: ignore[attr-defined]
    print(f"{len(rows)} rows -> {OUT}", dict(counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
