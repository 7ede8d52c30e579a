"""The audit log's hash chain (issue 15): each record carries the hash of the one before it,
so an edited, inserted or deleted record breaks the chain from there on.

``hash = sha256(prev_hash | at | actor | action | target | details)`` over a canonical JSON
array, hex. Records written before the chain existed (empty ``hash``) precede it and are
reported as unchained; the first chained record's ``prev_hash`` is the empty string.
``parley audit verify`` reads the records in id order and names the first that does not hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: PostgreSQL: the transaction-scoped advisory lock that orders chain appends across processes.
AUDIT_CHAIN_LOCK = 0x7061726C6579_0A  # "parley" + 10


def chain_hash(prev: str, at: int, actor: str, action: str, target: str, details: str) -> str:
    payload = json.dumps(
        [prev, int(at), actor, action, target, details], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    checked: int
    unchained: int
    broken_id: int | None

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def verify(rows: Iterable[Any]) -> Verification:
    """Rows with ``id, at, actor, action, target, details, prev_hash, hash`` in id order."""
    prev: str | None = None  # None: still in the unchained records before the chain
    checked = unchained = 0
    for r in rows:
        if prev is None and not r["hash"]:
            if r["prev_hash"]:
                return Verification(checked, unchained, int(r["id"]))
            unchained += 1
            continue
        expected_prev = prev or ""
        want = chain_hash(
            expected_prev, r["at"], r["actor"], r["action"], r["target"], r["details"]
        )
        if r["prev_hash"] != expected_prev or r["hash"] != want:
            return Verification(checked, unchained, int(r["id"]))
        prev = r["hash"]
        checked += 1
    return Verification(checked, unchained, None)
