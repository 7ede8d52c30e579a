"""``parley audit verify`` and ``parley audit export`` over the audit log's rows, which
``cli.py`` reads straight from the database (SQLite in the data dir, or ``--database-url``),
without a running server."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from server.audit_chain import verify


def run_verify(rows: list[Any], out: TextIO = sys.stdout) -> int:
    """0 when the chain holds; 1, naming the first broken record, when it does not."""
    result = verify(rows)
    if result.ok:
        extra = f" ({result.unchained} older records precede the chain)" if result.unchained else ""
        print(f"audit chain holds: {result.checked} records{extra}", file=out)
        return 0
    print(f"audit chain broken at record {result.broken_id}", file=out)
    return 1


def _json_lines(rows: list[Any]) -> Iterator[str]:
    for r in rows:
        yield json.dumps(
            {
                "id": r["id"],
                "at": r["at"],
                "actor": r["actor"],
                "action": r["action"],
                "target": r["target"],
                "details": json.loads(r["details"]),
                "prevHash": r["prev_hash"],
                "hash": r["hash"],
            },
            ensure_ascii=False,
        )


def run_export(rows: list[Any], out: TextIO = sys.stdout) -> int:
    """Every record as one JSON object a line, oldest first, with its hashes."""
    for line in _json_lines(rows):
        print(line, file=out)
    return 0
