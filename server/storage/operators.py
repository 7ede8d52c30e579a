"""Operator accounts and their dashboard sessions (issue 17): the records, and the SQL both
backends share (``sqlite/operators.py`` and ``postgres/operators.py`` run it).

Statements are written with ``?`` placeholders; the PostgreSQL repository numbers them.
Every write stores its audit row in the same transaction, so the audit log's hash chain
covers sign-ins, failures, lockouts and account changes.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from server.storage.sql import Exec, SharedSql, SqlTx
from server.storage.types import Audit

T = TypeVar("T")

#: The columns ``update_operator`` may set.
UPDATABLE = frozenset(
    {
        "role",
        "password_hash",
        "totp_secret",
        "totp_pending",
        "totp_last_step",
        "recovery",
        "scope_groups",
        "disabled",
        "failures",
        "last_failure_at",
        "locked",
        "updated_at",
    }
)


@dataclass(frozen=True)
class OperatorRecord:
    """A stored operator. ``recovery`` holds the SHA-256 of each unused recovery code;
    ``totp_pending`` a secret being enrolled (not yet confirmed with a code)."""

    name: str
    role: str
    password_hash: str
    totp_secret: str = ""
    totp_pending: str = ""
    totp_last_step: int = 0
    recovery: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # a group moderator's groups; empty: every conversation
    disabled: bool = False
    failures: int = 0
    last_failure_at: int = 0
    locked: bool = False
    created_at: int = 0
    updated_at: int = 0

    def to_json(self) -> dict[str, Any]:
        """As admins see it (never a hash or a secret)."""
        return {
            "name": self.name,
            "role": self.role,
            "totp": bool(self.totp_secret),
            "recoveryCodesLeft": len(self.recovery),
            "groups": list(self.groups),
            "disabled": self.disabled,
            "locked": self.locked,
            "failures": self.failures,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True)
class SessionRecord:
    session_id: str  # SHA-256 of the cookie's token
    operator: str
    created_at: int
    expires_at: int


def _operator(r: Any) -> OperatorRecord:
    return OperatorRecord(
        r["name"],
        r["role"],
        r["password_hash"],
        r["totp_secret"],
        r["totp_pending"],
        int(r["totp_last_step"]),
        tuple(json.loads(r["recovery"])),
        tuple(json.loads(r["scope_groups"])),
        bool(r["disabled"]),
        int(r["failures"]),
        int(r["last_failure_at"]),
        bool(r["locked"]),
        int(r["created_at"]),
        int(r["updated_at"]),
    )


def _column(name: str, value: Any) -> Any:
    if name in ("recovery", "scope_groups"):
        return json.dumps(list(value))
    if isinstance(value, bool):
        return 1 if value else 0
    return value


class OperatorsSql(SharedSql):
    """``ports.OperatorRepository`` over a backend's ``SharedSql``."""

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit, at: int) -> T:
        """Run ``fn`` and store ``audit`` in one transaction, unless ``fn`` returns False
        (it changed nothing)."""

        async def op(tx: SqlTx) -> T:
            result = await fn(tx.execute)
            if result is not False:
                await tx.audit(audit, at)
            return result

        return await self._transact(op)

    async def add_operator(self, record: OperatorRecord, audit: Audit) -> bool:
        """False, storing nothing, when the name is taken."""

        async def fn(run: Exec) -> bool:
            n = await run(
                "INSERT INTO operators (name, role, password_hash, totp_secret, totp_pending,"
                " totp_last_step, recovery, scope_groups, disabled, failures, last_failure_at, locked,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO NOTHING",
                (
                    record.name,
                    record.role,
                    record.password_hash,
                    record.totp_secret,
                    record.totp_pending,
                    record.totp_last_step,
                    json.dumps(list(record.recovery)),
                    json.dumps(list(record.groups)),
                    1 if record.disabled else 0,
                    record.failures,
                    record.last_failure_at,
                    1 if record.locked else 0,
                    record.created_at,
                    record.updated_at,
                ),
            )
            return n > 0

        return await self._write(fn, audit, record.created_at)

    async def get_operator(self, name: str) -> OperatorRecord | None:
        rows = await self._all("SELECT * FROM operators WHERE name = ?", (name,))
        return _operator(rows[0]) if rows else None

    async def operators(self) -> list[OperatorRecord]:
        return [_operator(r) for r in await self._all("SELECT * FROM operators ORDER BY name", ())]

    async def update_operator(
        self,
        name: str,
        changes: dict[str, Any],
        audit: Audit,
        at: int,
        *,
        end_sessions: bool = False,
        session: SessionRecord | None = None,
        expect: dict[str, Any] | None = None,
    ) -> bool:
        """Set ``changes`` (columns of ``UPDATABLE``); ``end_sessions`` deletes the
        operator's sessions, ``session`` adds one; all with ``audit`` in one transaction.
        ``expect``: columns that must still hold these values (a TOTP step or recovery code
        used by two sign-ins at once counts for one). False, writing nothing (not even the
        audit row), when there is no such operator or ``expect`` does not hold."""
        unknown = (set(changes) | set(expect or {})) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        names = sorted(changes)
        held = sorted(expect or {})
        if held and not names:
            raise ValueError("expect needs changes")

        async def fn(run: Exec) -> bool:
            found = 1
            if names:
                found = await run(
                    f"UPDATE operators SET {', '.join(f'{c} = ?' for c in names)} WHERE name = ?"
                    + "".join(f" AND {c} = ?" for c in held),
                    (
                        *(_column(c, changes[c]) for c in names),
                        name,
                        *(_column(c, (expect or {})[c]) for c in held),
                    ),
                )
            if end_sessions:
                await run("DELETE FROM operator_sessions WHERE operator = ?", (name,))
            if session is not None and found:
                await run(
                    "INSERT INTO operator_sessions (id, operator, created_at, expires_at)"
                    " VALUES (?, ?, ?, ?)",
                    (session.session_id, session.operator, session.created_at, session.expires_at),
                )
            return found > 0

        return await self._write(fn, audit, at)

    async def record_failure(
        self, name: str, at: int, lock_after: int, audit: Audit
    ) -> OperatorRecord | None:
        """Count a failed sign-in (in SQL, so concurrent failures all count) and lock the
        account at ``lock_after``; the record as it now stands."""

        async def fn(run: Exec) -> None:
            await run(
                "UPDATE operators SET failures = failures + 1, last_failure_at = ?,"
                " locked = CASE WHEN failures + 1 >= ? THEN 1 ELSE locked END WHERE name = ?",
                (at, lock_after, name),
            )

        await self._write(fn, audit, at)
        return await self.get_operator(name)

    async def session(self, session_id: str) -> tuple[SessionRecord, OperatorRecord] | None:
        rows = await self._all(
            "SELECT s.id AS s_id, s.created_at AS s_created, s.expires_at AS s_expires, o.*"
            " FROM operator_sessions s JOIN operators o ON o.name = s.operator WHERE s.id = ?",
            (session_id,),
        )
        if not rows:
            return None
        r = rows[0]
        op = _operator(r)
        return SessionRecord(r["s_id"], op.name, int(r["s_created"]), int(r["s_expires"])), op

    async def end_session(self, session_id: str, audit: Audit, at: int) -> None:
        """Delete one session (and, while at it, every expired one)."""

        async def fn(run: Exec) -> None:
            await run(
                "DELETE FROM operator_sessions WHERE id = ? OR expires_at <= ?", (session_id, at)
            )

        await self._write(fn, audit, at)
