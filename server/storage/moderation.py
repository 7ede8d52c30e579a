"""Moderation state: rules with revisions, lists, settings, the review queue and user reports;
the SQL both backends share (``sqlite/moderation.py`` and ``postgres/moderation.py`` run it,
see ``sql.py``).

Shares the chat repositories' database (so verdicts, audit rows and queue entries commit
together with message changes). Report texts are sealed like message content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from server import jsoncodec
from server.crypto import KeyRing
from server.storage.sql import SharedSql, SqlTx
from server.storage.types import Audit, ReviewItem

_dumps = jsoncodec.dumps


class ModerationSql(SharedSql):
    """``ports.ModerationRepository`` over a backend's ``SharedSql``."""

    #: One value: the id of the next report (it is in the sealed body's associated data, so
    #: it is taken before the insert).
    NEXT_REPORT_ID: ClassVar[str]

    def __init__(self, keyring: KeyRing) -> None:
        self._keyring = keyring
        #: Called with each new report after it is committed (outgoing webhooks); must not block.
        self.on_report: Callable[[dict[str, Any]], None] | None = None

    # ----------------------------------------------------------------- rules

    async def rules(self) -> list[dict[str, Any]]:
        rows = await self._all("SELECT body FROM rules WHERE deleted_at = 0 ORDER BY id")
        return [json.loads(r["body"]) for r in rows]

    async def rule(self, rule_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT body FROM rules WHERE id = ? AND deleted_at = 0", (rule_id,))
        return json.loads(row["body"]) if row else None

    async def put_rule(
        self, body: dict[str, Any], *, actor: str, at: int, create: bool
    ) -> dict[str, Any]:
        """Insert (``create``) or replace a rule, storing a new revision; returns the stored body.

        ``body`` must already be validated; its ``revision``, ``createdAt``, ``updatedAt`` are set here.
        Raises KeyError if ``create`` and the id exists (live), or not ``create`` and it does not.
        """
        rule_id = body["id"]

        async def op(tx: SqlTx) -> dict[str, Any]:
            row = await tx.fetchone(
                "SELECT revision, created_at, deleted_at FROM rules WHERE id = ?" + self.FOR_UPDATE,
                (rule_id,),
            )
            live = row is not None and row["deleted_at"] == 0
            if create and live:
                raise KeyError(rule_id)
            if not create and not live:
                raise LookupError(rule_id)
            revision = int(row["revision"] if row else 0) + 1
            created = int(row["created_at"] if live and row else at)
            stored = {**body, "revision": revision, "createdAt": created, "updatedAt": at}
            text = _dumps(stored)
            await tx.execute(
                "INSERT INTO rules (id, body, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, revision = excluded.revision,"
                " created_at = excluded.created_at, updated_at = excluded.updated_at, deleted_at = 0",
                (rule_id, text, revision, created, at),
            )
            await tx.execute(
                "INSERT INTO rule_revisions (rule_id, revision, body, actor, at) VALUES (?, ?, ?, ?, ?)",
                (rule_id, revision, text, actor, at),
            )
            await tx.audit(
                Audit(
                    actor,
                    "rule.create" if create else "rule.update",
                    rule_id,
                    {"revision": revision},
                ),
                at,
            )
            return stored

        return await self._transact(op)

    async def delete_rule(self, rule_id: str, *, actor: str, at: int) -> bool:
        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute(
                "UPDATE rules SET deleted_at = ? WHERE id = ? AND deleted_at = 0", (at, rule_id)
            )
            if changed:
                await tx.audit(Audit(actor, "rule.delete", rule_id, {}), at)
            return bool(changed)

        return await self._transact(op)

    async def rule_revisions(self, rule_id: str) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT revision, body, actor, at FROM rule_revisions WHERE rule_id = ? ORDER BY revision DESC",
            (rule_id,),
        )
        return [
            {
                "revision": r["revision"],
                "actor": r["actor"],
                "at": r["at"],
                "rule": json.loads(r["body"]),
            }
            for r in rows
        ]

    async def has_any_rule_history(self) -> bool:
        row = await self._one("SELECT 1 FROM rule_revisions LIMIT 1")
        return row is not None

    # ----------------------------------------------------------------- lists

    async def lists(self) -> list[dict[str, Any]]:
        rows = await self._all("SELECT body FROM lists ORDER BY id")
        return [json.loads(r["body"]) for r in rows]

    async def get_list(self, list_id: str) -> dict[str, Any] | None:
        row = await self._one("SELECT body FROM lists WHERE id = ?", (list_id,))
        return json.loads(row["body"]) if row else None

    async def put_list(
        self, body: dict[str, Any], *, actor: str, at: int, create: bool
    ) -> dict[str, Any]:
        list_id = body["id"]

        async def op(tx: SqlTx) -> dict[str, Any]:
            row = await tx.fetchone(
                "SELECT created_at FROM lists WHERE id = ?" + self.FOR_UPDATE, (list_id,)
            )
            if create and row is not None:
                raise KeyError(list_id)
            if not create and row is None:
                raise LookupError(list_id)
            created = int(row["created_at"] if row else at)
            stored = {**body, "createdAt": created, "updatedAt": at}
            await tx.execute(
                "INSERT INTO lists (id, body, created_at, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                (list_id, _dumps(stored), created, at),
            )
            await tx.audit(
                Audit(actor, "list.create" if create else "list.update", list_id, {}), at
            )
            return stored

        return await self._transact(op)

    async def delete_list(self, list_id: str, *, actor: str, at: int) -> bool:
        async def op(tx: SqlTx) -> bool:
            changed = await tx.execute("DELETE FROM lists WHERE id = ?", (list_id,))
            if changed:
                await tx.audit(Audit(actor, "list.delete", list_id, {}), at)
            return bool(changed)

        return await self._transact(op)

    # ----------------------------------------------------------------- settings

    async def settings(self) -> dict[str, Any]:
        row = await self._one("SELECT value FROM settings WHERE key = 'moderation'")
        return json.loads(row["value"]) if row else {}

    async def put_settings(self, value: dict[str, Any], *, actor: str, at: int) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "INSERT INTO settings (key, value) VALUES ('moderation', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (_dumps(value),),
            )
            await tx.audit(Audit(actor, "settings.update", "moderation", {}), at)

        await self._transact(op)

    # ----------------------------------------------------------------- review queue

    async def enqueue(
        self,
        message_id: int,
        state: str,
        rule_id: str | None,
        at: int,
        *,
        audit: Audit | None = None,
    ) -> bool:
        async def op(tx: SqlTx) -> bool:
            if not await tx.enqueue_review(message_id, state, rule_id, at):
                return False  # queued before (a job run twice): nothing new to audit
            await tx.audit(audit, at)
            return True

        return await self._transact(op)

    async def queue(self, state: str, *, limit: int, before: int | None = None) -> list[ReviewItem]:
        """Open items in one state, oldest first."""
        rows = await self._all(
            "SELECT message_id, state, rule_id, at FROM review WHERE state = ? AND decided_at = 0"
            " AND message_id < ? ORDER BY message_id LIMIT ?",
            (state, before or 2**62, limit),
        )
        return [ReviewItem(r["message_id"], r["state"], r["rule_id"], r["at"]) for r in rows]

    async def queue_in(self, state: str, conversation_key: str, *, limit: int) -> list[ReviewItem]:
        """Open items in one state about messages of one conversation, oldest first."""
        rows = await self._all(
            "SELECT r.message_id, r.state, r.rule_id, r.at FROM review AS r"
            " JOIN messages AS m ON m.id = r.message_id"
            " WHERE r.state = ? AND r.decided_at = 0 AND m.conv_key = ?"
            " ORDER BY r.message_id LIMIT ?",
            (state, conversation_key, limit),
        )
        return [ReviewItem(r["message_id"], r["state"], r["rule_id"], r["at"]) for r in rows]

    async def disapproved(self, *, limit: int) -> list[int]:
        rows = await self._all(
            "SELECT id FROM messages WHERE status = 'disapproved' ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [int(r["id"]) for r in rows]

    async def close_review(
        self, message_id: int, decision: str, by: str, at: int, audit: Audit
    ) -> None:
        """Close a message's open queue items with an audit row (no status change)."""

        async def op(tx: SqlTx) -> None:
            await tx.close_review(message_id, decision, by, at)
            await tx.audit(audit, at)

        await self._transact(op)

    # ----------------------------------------------------------------- reports

    async def add_report(
        self,
        message_id: int,
        reporter: str,
        reason: str,
        remarks: str,
        at: int,
        category: str = "other",
    ) -> tuple[dict[str, Any], bool]:
        """Store a user report (once per reporter and message) and queue the message as reported."""

        async def op(tx: SqlTx) -> int | None:
            # A duplicate report leaves a gap in PostgreSQL's sequence, never a reused id.
            row = await tx.fetchone(self.NEXT_REPORT_ID)
            assert row is not None
            report_id = int(row[0])
            kid, body = self._keyring.seal(
                _dumps({"reason": reason, "remarks": remarks, "category": category}).encode(),
                f"parley:report:{report_id}".encode(),
            )
            inserted = await tx.execute(
                "INSERT INTO reports (id, message_id, reporter, kid, body, at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id, reporter) DO NOTHING",
                (report_id, message_id, reporter, kid, body, at),
            )
            if not inserted:
                return None
            await tx.enqueue_review(message_id, "reported", None, at)
            await tx.audit(
                Audit(reporter, "message.report", str(message_id), {"reportId": report_id}),
                at,
            )
            return report_id

        report_id = await self._transact(op)
        report = {
            "messageId": message_id,
            "reporter": reporter,
            "reason": reason,
            "remarks": remarks,
            "category": category,
            "at": at,
        }
        if report_id is None:
            return report, False
        created = {"id": report_id, **report}
        if self.on_report is not None:
            self.on_report(created)
        return created, True

    async def reports_for(self, message_id: int) -> list[dict[str, Any]]:
        rows = await self._all(
            "SELECT id, reporter, kid, body, at FROM reports WHERE message_id = ? ORDER BY id",
            (message_id,),
        )
        out = []
        for r in rows:
            content = json.loads(
                self._keyring.open(r["kid"], r["body"], f"parley:report:{r['id']}".encode())
            )
            out.append(
                {
                    "id": r["id"],
                    "reporter": r["reporter"],
                    "at": r["at"],
                    "category": "other",
                    **content,
                }
            )
        return out
