"""The moderators' side: the review queue as they see it, and their decisions."""

from __future__ import annotations

from typing import Any, Protocol

from server.clock import Clock
from server.errors import Conflict, NotFound
from server.models import Message, Moderation, Status
from server.services.contracts import EventSink, VerdictApplier
from server.storage.ports import MessageRepository, ModerationRepository, Transaction
from server.storage.types import Audit

QUEUE_STATES = ("review", "flagged", "reported", "escalated", "disapproved", "appeals")


class ReviewHooks(Protocol):
    """The appeals queue, and telling reporters the outcome (``services/appeals.py``)."""

    async def appeal_items(self, *, limit: int) -> list[dict[str, Any]]: ...
    async def reviewed(self, message_id: int, sender: str, *, approve: bool) -> None: ...


class ReviewDesk:
    """Lists queue items and applies moderators' approvals and disapprovals."""

    def __init__(
        self,
        messages: MessageRepository,
        store: ModerationRepository,
        verdicts: VerdictApplier,
        *,
        events: EventSink,
        clock: Clock,
        hooks: ReviewHooks | None = None,
    ) -> None:
        self._hooks = hooks
        self._messages = messages
        self._store = store
        self._verdicts = verdicts
        self._events = events
        self._clock = clock

    async def items(self, state: str, *, limit: int) -> list[dict[str, Any]]:
        """The open items in ``state``, oldest first, as the API shows them; for
        ``disapproved``, the newest disapproved messages (no rule id, since their update)."""
        if state == "appeals":
            return await self._hooks.appeal_items(limit=limit) if self._hooks else []
        found: list[tuple[Message, str | None, int]] = []
        if state == "disapproved":
            for message_id in await self._store.disapproved(limit=limit):
                message = await self._messages.get_message(message_id)
                if message is not None:
                    found.append((message, None, message.updated_at))
        else:
            for item in await self._store.queue(state, limit=limit):
                message = await self._messages.get_message(item.message_id)
                if message is not None:
                    found.append((message, item.rule_id, item.at))
        out = []
        for message, rule_id, at in found:
            entry: dict[str, Any] = {
                "message": message.to_json(),
                "state": state,
                "ruleId": rule_id,
                "at": at,
            }
            if message.moderation is not None:
                entry["moderation"] = message.moderation.to_json()
            if state in ("reported", "escalated"):
                entry["reports"] = await self._store.reports_for(message.id)
            out.append(entry)
        return out

    async def reports_for(self, message_id: int) -> list[dict[str, Any]]:
        """The users' reports of a message (its review card)."""
        return await self._store.reports_for(message_id)

    async def open_counts(self, *, cap: int = 1000) -> dict[str, int]:
        """Open items per queue (``review``, ``flagged``, ``reported``), counted up to ``cap``
        (the dashboard's live counters)."""
        return {
            state: len(await self._store.queue(state, limit=cap))
            for state in ("review", "flagged", "reported")
        }

    async def decide(self, message_id: int, *, approve: bool, actor: str, reason: str) -> Message:
        """A moderator's decision: the verdict and the closing of its queue items, audited,
        in one commit; the message as stored after it. Raises Conflict if it changed meanwhile."""
        message = await self._messages.get_message(message_id)
        if message is None:
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        at = self._clock.now()
        decision = "approved" if approve else "disapproved"

        async def close(tx: Transaction) -> None:
            await tx.close_review(message.id, decision, actor, at)

        target = Status.APPROVED if approve else Status.DISAPPROVED
        audit = Audit(
            actor, f"message.{decision}", str(message.id), {"manual": True, "reason": reason}
        )
        if message.status is target or (approve and message.status is Status.UNMODERATED):
            await self._store.close_review(message.id, decision, actor, at, audit)
            if self._hooks is not None:
                await self._hooks.reviewed(message.id, message.sender, approve=approve)
            return message
        moderation = (
            None
            if approve
            else Moderation("manual", "Moderator decision", reason or "disapproved by a moderator")
        )
        updated = await self._verdicts.apply_verdict(
            message, target, moderation, audit=audit, also=close
        )
        if updated is None:
            raise Conflict(
                "the message changed meanwhile; reload and decide again", {"messageId": message.id}
            )
        if self._hooks is not None:
            await self._hooks.reviewed(message.id, message.sender, approve=approve)
        if moderation is not None:
            self._events.emit(
                "message.disapproved",
                {
                    "message": updated.to_json(),
                    "moderation": moderation.to_json(),
                    "manual": True,
                    "by": actor,
                },
            )
        return updated
