"""The pure parts of restrictions and the audit chain: when a restriction is in force, the
SQL form of "hidden by a shadow ban" agreeing with the in-memory one, and the hash chain."""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

import pytest

from server.audit_chain import chain_hash, verify
from server.models import Message, Status
from server.storage.sanctions import RestrictionRecord, shadowed_sql
from server.storage.sqlite.migrations import MIGRATIONS


def restriction(
    scope: str = "global", *, at: int = 100, until: int = 0, lifted_at: int = 0
) -> RestrictionRecord:
    return RestrictionRecord(
        "r1", "spam", "shadow_ban", scope, until, "", "d1", "mod", at, lifted_at
    )


def message(sent_at: int, receiver: str = "bob", receiver_type: str = "user") -> Message:
    return Message(
        id=sent_at, muid="m", conversation_id="c", sender="spam", receiver=receiver,
        receiver_type=receiver_type, category="message", type="text", text="x", data=None,
        metadata={}, tags=(), parent_id=None, attachment=None, sent_at=sent_at,
        updated_at=sent_at, edited_at=0, deleted_at=0, status=Status.APPROVED,
    )  # fmt: skip


def test_active_at_bounds() -> None:
    r = restriction(at=100, until=200)
    assert not r.active_at(99) and r.active_at(100) and r.active_at(199) and not r.active_at(200)
    lifted = restriction(at=100, lifted_at=150)
    assert lifted.active_at(149) and not lifted.active_at(150)
    assert lifted.active_at(150, through_lift=True) and not lifted.active_at(151, through_lift=True)


CASES = [
    (restriction(), message(150)),
    (restriction(), message(50)),
    (restriction(until=120), message(130)),
    (restriction(lifted_at=150), message(150)),
    (restriction(lifted_at=150), message(151)),
    (restriction("group:g1"), message(150, "g1", "group")),
    (restriction("group:g1"), message(150, "g2", "group")),
    (restriction("group:g1"), message(150, "g1", "user")),
]


@pytest.mark.parametrize(("record", "msg"), CASES)
def test_sql_agrees_with_memory(record: RestrictionRecord, msg: Message) -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(MIGRATIONS[7])  # migration 8, the one that creates these tables
    db.execute(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, sender TEXT, receiver TEXT,"
        " receiver_type TEXT, sent_at INTEGER)"
    )
    db.execute(
        "INSERT INTO restrictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record.restriction_id, record.uid, record.kind, record.scope, record.until, "", "d1",
         "mod", record.at, record.lifted_at),
    )  # fmt: skip
    db.execute(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?)",
        (msg.id, msg.sender, msg.receiver, msg.receiver_type, msg.sent_at),
    )
    (sql_hidden,) = db.execute(f"SELECT {shadowed_sql('m')} FROM messages AS m").fetchone()
    in_memory = record.active_at(msg.sent_at, through_lift=True) and record.covers(
        msg.receiver, msg.receiver_type
    )
    assert bool(sql_hidden) is in_memory


def chain(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    prev = ""
    for i in range(1, n + 1):
        row = {"id": i, "at": 1000 + i, "actor": "a", "action": "x", "target": str(i),
               "details": "{}", "prev_hash": prev}  # fmt: skip
        row["hash"] = prev = chain_hash(prev, row["at"], "a", "x", str(i), "{}")
        rows.append(row)
    return rows


def test_chain_holds_and_names_the_first_broken_record() -> None:
    rows = chain(5)
    assert verify(rows).ok and verify(rows).checked == 5
    edited = [dict(r) for r in rows]
    edited[2]["details"] = '{"x":1}'
    assert verify(edited).broken_id == 3
    deleted = rows[:2] + rows[3:]
    assert verify(deleted).broken_id == 4
    legacy = [{**r, "hash": "", "prev_hash": ""} for r in chain(2)]
    moved = [{**r, "id": r["id"] + 2} for r in rows]
    result = verify([*legacy, *moved])
    assert result.ok and result.unchained == 2
    assert all(a["hash"] == b["prev_hash"] for a, b in itertools.pairwise(rows))
