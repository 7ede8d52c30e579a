"""Rebuild ``data/parley_labelled.jsonl`` from the hand-written sources in ``data/source/``.

``python -m moderation.training.build_labelled``. Source format: ``@ label,label`` (or
``@ none``) sets the labels of the lines below it; a line starting with ``#`` is a comment;
every other non-empty line is a message. ``@teaches label,label`` (until the next
``@teaches`` or the end of the file; ``@teaches all`` ends it) says the lines below are labelled
for those categories only: they train no other head (the row's ``teaches`` field), as a public
set's row trains only the categories its set labels.
A line with ``{g}`` is a template, filled with 4 of the group names in ``groups.txt``
(chosen by the line's hash). The split is a hash of the line (of the template for templated
lines): 25 % ``test``. Deterministic: the same sources give the same file.

``--add FILE`` (repeatable) adds files from elsewhere (``data/candidates/``) after the
sources, and ``--out FILE`` writes elsewhere: a trial mix without touching the shipped set
(``bench/quality_judge.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from moderation.training.datasets import ALL_CATEGORIES

DATA = Path(__file__).resolve().parent / "data"
SOURCE = DATA / "source"
OUT = DATA / "parley_labelled.jsonl"


def _categories(spec: str, path: Path) -> list[str]:
    names = [c.strip() for c in spec.split(",")]
    unknown = [c for c in names if c not in ALL_CATEGORIES]
    if unknown:
        raise ValueError(f"{path.name}: unknown categories {unknown}")
    return names


def build(add: Sequence[Path] = ()) -> list[dict[str, object]]:
    groups = [
        g.strip() for g in (SOURCE / "groups.txt").read_text("utf-8").splitlines() if g.strip()
    ]
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for path in [*sorted(SOURCE.glob("[0-9]*.txt")), *add]:
        labels: list[str] = []
        teaches: list[str] | None = None
        for raw in path.read_text("utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@teaches"):
                spec = line[len("@teaches") :].strip()
                teaches = None if spec == "all" else sorted(_categories(spec, path))
                continue
            if line.startswith("@"):
                spec = line[1:].strip()
                labels = [] if spec == "none" else _categories(spec, path)
                continue
            if teaches is not None and not set(labels) <= set(teaches):
                raise ValueError(f"{path.name}: labels {labels} outside @teaches {teaches}")
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
                row: dict[str, object] = {
                    "text": text,
                    "labels": sorted(labels),
                    "split": split,
                    "template": template,
                }
                if teaches is not None:
                    row["teaches"] = teaches
                rows.append(row)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--add", type=Path, action="append", default=[], help="another source")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = build(args.add)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts = Counter(label for row in rows for label in row["labels"])  # type: ignore[attr-defined]
    print(f"{len(rows)} rows -> {args.out}", dict(counts), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
