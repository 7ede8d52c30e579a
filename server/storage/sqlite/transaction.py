"""The ``Transaction`` of the ports on SQLite: the writes that may join another's commit.

The functions take the writer's connection inside an op; repositories call them for their own
audit rows and queue entries, and ``SqliteTransaction`` hands them to a ``TxOp``.
"""

from __future__ import annotations

from server import jsoncodec
from server.audit_chain import chain_hash
from server.storage.sqlite.conn import WriteConnection
from server.storage.types import Audit


async def insert_audit(conn: WriteConnection, audit: Audit | None, at: int) -> None:
    """Write an audit row (none for None) inside an op's transaction."""
    if audit is None:
        return
    # The hash chain (``server/audit_chain.py``): the writer is the only one appending.
    async with conn.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") as cur:
        row = await cur.fetchone()
    prev = row[0] if row is not None else ""
    details = jsoncodec.dumps(audit.details)
    digest = chain_hash(prev, at, audit.actor, audit.action, audit.target, details)
    await conn.execute(
        "INSERT INTO audit (at, actor, action, target, details, prev_hash, hash)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (at, audit.actor, audit.action, audit.target, details, prev, digest),
    )


async def enqueue_review(
    conn: WriteConnection, message_id: int, state: str, rule_id: str | None, at: int
) -> bool:
    """Put a message in the review queue inside an op's transaction (idempotent); whether
    the entry is new."""
    async with conn.execute(
        "INSERT OR IGNORE INTO review (message_id, state, rule_id, at) VALUES (?, ?, ?, ?)",
        (message_id, state, rule_id, at),
    ) as cur:
        return cur.rowcount == 1


async def close_review(
    conn: WriteConnection, message_id: int, decision: str, by: str, at: int
) -> None:
    """Close a message's open queue items inside an op's transaction."""
    await conn.execute(
        "UPDATE review SET decided_at = ?, decided_by = ?, decision = ? WHERE message_id = ? AND decided_at = 0",
        (at, by, decision, message_id),
    )


class SqliteTransaction:
    """``ports.Transaction`` over the writer's connection of one op."""

    __slots__ = ("_conn",)

    def __init__(self, conn: WriteConnection) -> None:
        self._conn = conn

    async def audit(self, audit: Audit, at: int) -> None:
        await insert_audit(self._conn, audit, at)

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> None:
        await enqueue_review(self._conn, message_id, state, rule_id, at)

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        await close_review(self._conn, message_id, decision, by, at)
