"""The ``Transaction`` of the ports on PostgreSQL: the writes that may join another's commit.

The functions take the writer's transaction inside an op; repositories call them for their
own audit rows and queue entries, and ``PostgresTransaction`` hands them to a ``TxOp``.
"""

from __future__ import annotations

from server import jsoncodec
from server.audit_chain import AUDIT_CHAIN_LOCK, chain_hash
from server.storage.postgres.write_tx import WriteTx
from server.storage.types import Audit


async def insert_audit(tx: WriteTx, audit: Audit | None, at: int) -> None:
    """Write an audit row (none for None) inside an op's transaction."""
    if audit is None:
        return
    # The hash chain (``server/audit_chain.py``): processes sharing the database take turns
    # appending (the lock is held until this transaction commits).
    await tx.execute("SELECT pg_advisory_xact_lock($1)", AUDIT_CHAIN_LOCK)
    prev = await tx.fetchval("SELECT hash FROM audit ORDER BY id DESC LIMIT 1") or ""
    details = jsoncodec.dumps(audit.details)
    await tx.execute(
        "INSERT INTO audit (at, actor, action, target, details, prev_hash, hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        at,
        audit.actor,
        audit.action,
        audit.target,
        details,
        prev,
        chain_hash(prev, at, audit.actor, audit.action, audit.target, details),
    )


async def enqueue_review(
    tx: WriteTx, message_id: int, state: str, rule_id: str | None, at: int
) -> bool:
    """Put a message in the review queue inside an op's transaction (idempotent); whether
    the entry is new."""
    return (
        await tx.execute(
            "INSERT INTO review (message_id, state, rule_id, at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            message_id,
            state,
            rule_id,
            at,
        )
        == 1
    )


async def close_review(tx: WriteTx, message_id: int, decision: str, by: str, at: int) -> None:
    """Close a message's open queue items inside an op's transaction."""
    await tx.execute(
        "UPDATE review SET decided_at = $1, decided_by = $2, decision = $3"
        " WHERE message_id = $4 AND decided_at = 0",
        at,
        by,
        decision,
        message_id,
    )


class PostgresTransaction:
    """``ports.Transaction`` over the writer's transaction of one op."""

    __slots__ = ("_tx",)

    def __init__(self, tx: WriteTx) -> None:
        self._tx = tx

    async def audit(self, audit: Audit, at: int) -> None:
        await insert_audit(self._tx, audit, at)

    async def enqueue_review(
        self, message_id: int, state: str, rule_id: str | None, at: int
    ) -> None:
        await enqueue_review(self._tx, message_id, state, rule_id, at)

    async def close_review(self, message_id: int, decision: str, by: str, at: int) -> None:
        await close_review(self._tx, message_id, decision, by, at)
