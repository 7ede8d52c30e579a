"""Decisions (statements of reasons), appeals, restrictions and group slow mode: the records,
and the SQL both backends share (``sqlite/sanctions.py`` and ``postgres/sanctions.py`` run it).

Statements are written with ``?`` placeholders; the PostgreSQL repository numbers them.
Every write stores its audit row in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from server import jsoncodec
from server.storage.sql import Exec, SharedSql, SqlTx
from server.storage.types import Audit

T = TypeVar("T")


@dataclass(frozen=True)
class DecisionRecord:
    """A stored decision: ``body`` is the statement of reasons as the user sees it (PROTOCOL.md);
    ``staff`` holds what only staff see (the raw reason, the matched term, the actor)."""

    decision_id: str
    uid: str
    message_id: int
    measure: str
    body: dict[str, Any]
    staff: dict[str, Any]
    notify: bool
    at: int


@dataclass(frozen=True)
class AppealRecord:
    appeal_id: str
    decision_id: str
    uid: str
    note: str
    state: str  # open | upheld | rejected
    reason: str = ""
    decided_by: str = ""
    at: int = 0
    decided_at: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "appealId": self.appeal_id,
            "decisionId": self.decision_id,
            "uid": self.uid,
            "note": self.note,
            "state": self.state,
            "reason": self.reason,
            "decidedBy": self.decided_by or None,
            "at": self.at,
            "decidedAt": self.decided_at,
        }


@dataclass(frozen=True)
class RestrictionRecord:
    restriction_id: str
    uid: str
    kind: str  # mute | shadow_ban
    scope: str  # global | group:<guid>
    until: int  # 0: no end
    reason: str
    decision_id: str
    by: str
    at: int
    lifted_at: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def active_at(self, t: int, *, through_lift: bool = False) -> bool:
        """In force at Unix time ``t`` (from its start, until its end or its lifting);
        ``through_lift`` counts the second it was lifted in (times are whole seconds: a
        message of that second may have been sent before the lifting)."""
        return (
            self.at <= t
            and (self.until == 0 or t < self.until)
            and (self.lifted_at == 0 or t < self.lifted_at + (1 if through_lift else 0))
        )

    def covers(self, receiver: str, receiver_type: str) -> bool:
        return self.scope == "global" or (
            receiver_type == "group" and self.scope == f"group:{receiver}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "restrictionId": self.restriction_id,
            "uid": self.uid,
            "kind": self.kind,
            "scope": self.scope,
            "until": self.until,
            "reason": self.reason,
            "decisionId": self.decision_id,
            "by": self.by,
            "at": self.at,
            "liftedAt": self.lifted_at,
        }


def _decision(r: Any) -> DecisionRecord:
    return DecisionRecord(
        r["id"],
        r["uid"],
        r["message_id"],
        r["measure"],
        json.loads(r["body"]),
        json.loads(r["staff"]),
        bool(r["notify"]),
        r["at"],
    )


def _appeal(r: Any) -> AppealRecord:
    return AppealRecord(
        r["id"],
        r["decision_id"],
        r["uid"],
        r["note"],
        r["state"],
        r["reason"],
        r["decided_by"],
        r["at"],
        r["decided_at"],
    )


def _restriction(r: Any) -> RestrictionRecord:
    return RestrictionRecord(
        r["id"],
        r["uid"],
        r["kind"],
        r["scope"],
        r["until_at"],
        r["reason"],
        r["decision_id"],
        r["by_actor"],
        r["at"],
        r["lifted_at"],
    )


class SanctionsSql(SharedSql):
    """``ports.SanctionRepository`` over a backend's ``SharedSql``."""

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit, at: int) -> T:
        """Run ``fn`` and store ``audit`` in one transaction."""

        async def op(tx: SqlTx) -> T:
            result = await fn(tx.execute)
            await tx.audit(audit, at)
            return result

        return await self._transact(op)

    # ----------------------------------------------------------------- decisions

    async def add_decision(self, record: DecisionRecord, audit: Audit) -> None:
        async def fn(run: Exec) -> None:
            await run(
                "INSERT INTO decisions (id, uid, message_id, measure, body, staff, notify, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.decision_id,
                    record.uid,
                    record.message_id,
                    record.measure,
                    jsoncodec.dumps(record.body),
                    jsoncodec.dumps(record.staff),
                    1 if record.notify else 0,
                    record.at,
                ),
            )

        await self._write(fn, audit, record.at)

    async def get_decision(self, decision_id: str) -> DecisionRecord | None:
        row = await self._one("SELECT * FROM decisions WHERE id = ?", (decision_id,))
        return _decision(row) if row is not None else None

    async def decisions_of(self, uid: str, *, limit: int) -> list[DecisionRecord]:
        """The user's decisions, newest first."""
        rows = await self._all(
            "SELECT * FROM decisions WHERE uid = ? ORDER BY at DESC, id DESC LIMIT ?", (uid, limit)
        )
        return [_decision(r) for r in rows]

    async def decisions_for_messages(self, message_ids: Sequence[int]) -> dict[int, DecisionRecord]:
        """The newest decision about each of ``message_ids`` that has one."""
        if not message_ids:
            return {}
        marks = ", ".join("?" * len(message_ids))
        rows = await self._all(
            f"SELECT * FROM decisions WHERE message_id IN ({marks}) ORDER BY at, id",
            tuple(message_ids),
        )
        return {r["message_id"]: _decision(r) for r in rows}

    # ----------------------------------------------------------------- appeals

    async def add_appeal(self, appeal: AppealRecord, audit: Audit) -> bool:
        """Store an open appeal; False (nothing stored) if the decision has one already."""

        async def fn(run: Exec) -> bool:
            return (
                await run(
                    "INSERT INTO appeals (id, decision_id, uid, note, state, reason, decided_by,"
                    " at, decided_at) VALUES (?, ?, ?, ?, 'open', '', '', ?, 0)"
                    " ON CONFLICT (decision_id) DO NOTHING",
                    (appeal.appeal_id, appeal.decision_id, appeal.uid, appeal.note, appeal.at),
                )
                > 0
            )

        found = await self.appeal_of(appeal.decision_id)
        if found is not None:
            return False
        return await self._write(fn, audit, appeal.at)

    async def appeal_of(self, decision_id: str) -> AppealRecord | None:
        row = await self._one("SELECT * FROM appeals WHERE decision_id = ?", (decision_id,))
        return _appeal(row) if row is not None else None

    async def get_appeal(self, appeal_id: str) -> AppealRecord | None:
        row = await self._one("SELECT * FROM appeals WHERE id = ?", (appeal_id,))
        return _appeal(row) if row is not None else None

    async def appeals(self, state: str, *, limit: int) -> list[AppealRecord]:
        """Appeals in ``state``, oldest first."""
        rows = await self._all(
            "SELECT * FROM appeals WHERE state = ? ORDER BY at, id LIMIT ?", (state, limit)
        )
        return [_appeal(r) for r in rows]

    async def appeals_of(self, uid: str) -> list[AppealRecord]:
        rows = await self._all("SELECT * FROM appeals WHERE uid = ? ORDER BY at, id", (uid,))
        return [_appeal(r) for r in rows]

    async def decide_appeal(
        self, appeal_id: str, state: str, reason: str, by: str, at: int, audit: Audit
    ) -> bool:
        """Close an open appeal; False if it was not open."""

        async def fn(run: Exec) -> bool:
            return (
                await run(
                    "UPDATE appeals SET state = ?, reason = ?, decided_by = ?, decided_at = ?"
                    " WHERE id = ? AND state = 'open'",
                    (state, reason, by, at, appeal_id),
                )
                > 0
            )

        return await self._write(fn, audit, at)

    # ----------------------------------------------------------------- restrictions

    async def add_restriction(self, record: RestrictionRecord, audit: Audit) -> None:
        async def fn(run: Exec) -> None:
            await run(
                "INSERT INTO restrictions (id, uid, kind, scope, until_at, reason, decision_id,"
                " by_actor, at, lifted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    record.restriction_id,
                    record.uid,
                    record.kind,
                    record.scope,
                    record.until,
                    record.reason,
                    record.decision_id,
                    record.by,
                    record.at,
                ),
            )

        await self._write(fn, audit, record.at)

    async def lift_restriction(self, restriction_id: str, at: int, audit: Audit) -> bool:
        async def fn(run: Exec) -> bool:
            return (
                await run(
                    "UPDATE restrictions SET lifted_at = ? WHERE id = ? AND lifted_at = 0",
                    (at, restriction_id),
                )
                > 0
            )

        return await self._write(fn, audit, at)

    async def restrictions(self) -> list[RestrictionRecord]:
        """Every restriction ever imposed (lifted ones too: a shadow ban hides what was sent
        while it stood), oldest first."""
        rows = await self._all("SELECT * FROM restrictions ORDER BY at, id", ())
        return [_restriction(r) for r in rows]

    # ----------------------------------------------------------------- group slow mode

    async def slow_modes(self) -> dict[str, int]:
        rows = await self._all("SELECT guid, seconds FROM group_slow_mode", ())
        return {r["guid"]: int(r["seconds"]) for r in rows}

    async def set_slow_mode(self, guid: str, seconds: int, at: int, audit: Audit) -> None:
        async def fn(run: Exec) -> None:
            await run(
                "INSERT INTO group_slow_mode (guid, seconds) VALUES (?, ?)"
                " ON CONFLICT (guid) DO UPDATE SET seconds = excluded.seconds",
                (guid, seconds),
            )

        await self._write(fn, audit, at)

    # ----------------------------------------------------------------- operator settings

    async def get_setting(self, key: str) -> Any:
        row = await self._one("SELECT value FROM sanction_settings WHERE key = ?", (key,))
        return json.loads(row["value"]) if row is not None else None

    async def put_setting(self, key: str, value: Any, at: int, audit: Audit) -> None:
        async def fn(run: Exec) -> None:
            await run(
                "INSERT INTO sanction_settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, jsoncodec.dumps(value)),
            )

        await self._write(fn, audit, at)


#: The audit log's columns that ``parley audit`` reads (with the hash chain's).
AUDIT_COLUMNS = "id, at, actor, action, target, details, prev_hash, hash"


def shadowed_sql(alias: str = "m") -> str:
    """A SQL condition (SQLite and PostgreSQL) true when a shadow ban hides the ``messages``
    row ``alias``: the same rule as ``Restrictions.hidden`` (a ban over its sender stood when
    it was sent, in its scope), for queries that must leave such messages out for everyone
    but their sender (an inbox's last message and unread count)."""
    m = alias
    return (
        "EXISTS (SELECT 1 FROM restrictions AS r WHERE r.kind = 'shadow_ban'"
        f" AND r.uid = {m}.sender AND r.at <= {m}.sent_at"
        f" AND (r.until_at = 0 OR {m}.sent_at < r.until_at)"
        f" AND (r.lifted_at = 0 OR {m}.sent_at < r.lifted_at + 1)"
        f" AND (r.scope = 'global' OR ({m}.receiver_type = 'group'"
        f" AND r.scope = 'group:' || {m}.receiver)))"
    )
