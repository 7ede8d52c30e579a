"""Retention (issue 15 item 7): the policy, legal holds, and the deletion of what is past it;
the SQL both backends share (``sqlite/retention.py`` and ``postgres/retention.py`` run it).

- ``retention_policy``: one row per scope, ``app`` or a group's conversation key
  (``g:<guid>``), with its period in seconds (0: kept forever). A group without a row follows
  the app's period.
- ``retention_holds``: conversations (by conversation key) that nothing deletes: a legal
  hold or a pinned conversation.

Statements are written with ``?`` placeholders; the PostgreSQL repository numbers them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from server.storage.sql import Exec, SharedSql, SqlTx
from server.storage.types import Audit

T = TypeVar("T")

APP = "app"


@dataclass(frozen=True)
class HoldRecord:
    hold_id: str
    conv_key: str  # u:<a>:<b> or g:<guid>
    kind: str  # legal_hold | pinned
    reason: str
    by: str
    at: int


@dataclass(frozen=True)
class Deleted:
    """What one batch of the job deleted."""

    messages: int
    media: list[str]  # ids of the uploads whose rows went (their files go next)


class RetentionSql(SharedSql):
    """``ports.RetentionRepository`` over a backend's ``SharedSql``."""

    async def _write(self, fn: Callable[[Exec], Awaitable[T]], audit: Audit | None, at: int) -> T:
        """Run ``fn`` (and store ``audit``, if any) in one transaction."""

        async def op(tx: SqlTx) -> T:
            result = await fn(tx.execute)
            await tx.audit(audit, at)
            return result

        return await self._transact(op)

    # ------------------------------------------------------------------ policy

    async def periods(self) -> dict[str, int]:
        """Seconds per scope: ``app`` and ``g:<guid>`` (only those set)."""
        rows = await self._all("SELECT scope, seconds FROM retention_policy", ())
        return {r[0]: int(r[1]) for r in rows}

    async def set_period(self, scope: str, seconds: int | None, audit: Audit, at: int) -> None:
        """Set a scope's period; None removes a group's own (it follows the app's again)."""

        async def fn(run: Exec) -> None:
            await run("DELETE FROM retention_policy WHERE scope = ?", (scope,))
            if seconds is not None:
                await run(
                    "INSERT INTO retention_policy (scope, seconds) VALUES (?, ?)", (scope, seconds)
                )

        await self._write(fn, audit, at)

    # ------------------------------------------------------------------ holds

    async def holds(self) -> list[HoldRecord]:
        rows = await self._all(
            "SELECT id, conv_key, kind, reason, by_actor, at FROM retention_holds ORDER BY at, id",
            (),
        )
        return [HoldRecord(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows]

    async def add_hold(self, hold: HoldRecord, audit: Audit) -> None:
        async def fn(run: Exec) -> None:
            await run(
                "INSERT INTO retention_holds (id, conv_key, kind, reason, by_actor, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (hold.hold_id, hold.conv_key, hold.kind, hold.reason, hold.by, hold.at),
            )

        await self._write(fn, audit, hold.at)

    async def remove_hold(self, hold_id: str, audit: Audit, at: int) -> bool:
        async def fn(run: Exec) -> bool:
            return await run("DELETE FROM retention_holds WHERE id = ?", (hold_id,)) == 1

        return await self._write(fn, audit, at)

    # ------------------------------------------------------------------ the job

    async def expired(self, now: int, limit: int) -> list[int]:
        """Ids of up to ``limit`` messages past their conversation's period, oldest first.
        A read, off the writer: the scan does not hold up sends."""
        rows = await self._all(
            "SELECT m.id FROM messages AS m"
            " LEFT JOIN retention_policy AS g ON g.scope = m.conv_key"
            " LEFT JOIN retention_policy AS a ON a.scope = 'app'"
            " WHERE COALESCE(g.seconds, a.seconds, 0) > 0"
            " AND m.sent_at < ? - COALESCE(g.seconds, a.seconds, 0)"
            " AND m.conv_key NOT IN (SELECT conv_key FROM retention_holds)"
            " ORDER BY m.id LIMIT ?",
            (now, limit),
        )
        return [int(r[0]) for r in rows]

    async def delete_messages(self, ids: Sequence[int], at: int) -> Deleted:
        """Delete the messages, their receipts, review entries and reports, and the rows of
        the uploads they carry (a quarantined upload stays: evidence), in one transaction.
        The inbox's heads follow through their triggers."""
        marks = ", ".join("?" * len(ids))
        media = [
            r[0]
            for r in await self._all(
                f"SELECT id FROM media WHERE attached_to IN ({marks}) AND quarantined_at = 0",
                tuple(ids),
            )
        ]

        async def fn(run: Exec) -> int:
            await self._before_delete(run)
            for table in ("receipts", "review", "reports"):
                await run(f"DELETE FROM {table} WHERE message_id IN ({marks})", tuple(ids))
            if media:
                await run(
                    f"DELETE FROM media WHERE id IN ({', '.join('?' * len(media))})"
                    " AND quarantined_at = 0",
                    tuple(media),
                )
            n = await run(f"DELETE FROM messages WHERE id IN ({marks})", tuple(ids))
            await self._after_delete(run)
            return n

        deleted = await self._write(fn, None, at)
        return Deleted(deleted, media)

    async def orphan_uploads(self, before: int, limit: int) -> list[str]:
        """Uploads created before ``before`` that no message carries (never sent)."""
        rows = await self._all(
            "SELECT id FROM media WHERE attached_to IS NULL AND quarantined_at = 0"
            " AND created_at < ? ORDER BY created_at LIMIT ?",
            (before, limit),
        )
        return [r[0] for r in rows]

    async def delete_uploads(self, ids: Sequence[str], at: int) -> list[str]:
        """Delete the rows of those uploads still unsent; the ids whose rows went (a send
        that attached one meanwhile keeps it)."""

        async def fn(run: Exec) -> list[str]:
            await self._before_delete(run)
            gone = [
                media_id
                for media_id in ids
                if await run(
                    "DELETE FROM media WHERE id = ? AND attached_to IS NULL AND quarantined_at = 0",
                    (media_id,),
                )
                == 1
            ]
            await self._after_delete(run)
            return gone

        return await self._write(fn, None, at)

    async def delete_deliveries(self, before: int, at: int) -> int:
        """The outgoing webhooks' log (its payloads hold messages) older than ``before``;
        deliveries still being tried stay."""

        async def fn(run: Exec) -> int:
            await self._before_delete(run)
            n = await run(
                "DELETE FROM webhook_deliveries WHERE created_at < ? AND status != 'pending'",
                (before,),
            )
            await self._after_delete(run)
            return n

        return await self._write(fn, None, at)

    @abstractmethod
    async def _before_delete(self, run: Exec) -> None:
        """A backend's preparation for deleting content (SQLite: overwrite freed space)."""

    @abstractmethod
    async def _after_delete(self, run: Exec) -> None: ...
