"""An engine verdict turned into what it means for the message: a stored status (through
``VerdictApplier``), a review-queue entry, audit records, outgoing events and the rules' side
actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from moderation.types import Action, Verdict, VerdictStatus
from server.clock import Clock
from server.metrics import Metrics
from server.models import Message, Moderation, Status
from server.services.contracts import EventSink, ProbationHold, VerdictApplier
from server.storage.ports import ModerationRepository, Transaction, TxOp
from server.storage.types import Audit

ACTOR = "moderation"


class Outcomes:
    """Applies the pipeline's verdicts (idempotent: a verdict on a moved-on message is a no-op)."""

    def __init__(
        self,
        verdicts: VerdictApplier,
        store: ModerationRepository,
        metrics: Metrics,
        *,
        events: EventSink,
        clock: Clock,
        disapproved: Callable[[Message, Verdict], Awaitable[None]] | None = None,
        probation: ProbationHold | None = None,
    ) -> None:
        #: New-account probation: an approval of a sender on probation is held for review.
        self._probation = probation
        self._verdicts = verdicts
        #: Called once a disapproval is stored (the media quarantine of known-bad images).
        self._disapproved = disapproved
        self._store = store
        self._metrics = metrics
        self._events = events
        self._clock = clock

    async def apply(self, message: Message, verdict: Verdict) -> None:
        """Turn an engine verdict into a stored status, queue entries, events and side actions."""
        if self._probation is not None:
            verdict = await self._probation.apply(verdict, message.sender)
        first = verdict.matches[0] if verdict.matches else None
        details: dict[str, Any] = {
            "rules": [{"ruleId": m.rule_id, "revision": m.revision} for m in verdict.matches],
            "actions": [a.value for a in verdict.actions],
        }
        at = self._clock.now()
        if verdict.status is VerdictStatus.REVIEW:
            assert first is not None
            # Why it is held (a matched rule, or a detector that ran out of time budget).
            details["reason"] = first.reason
            queued = await self._store.enqueue(
                message.id,
                "review",
                first.rule_id,
                at,
                audit=Audit(ACTOR, "message.review", str(message.id), details),
            )
            if not queued:
                return  # held before: this verdict was applied already (a job run twice)
            self._metrics.verdicts.labels("review").inc()
            self._events.emit(
                "message.review_required",
                {"message": message.to_json(), "ruleId": first.rule_id, **details},
            )
        else:
            status = (
                Status.DISAPPROVED
                if verdict.status is VerdictStatus.DISAPPROVED
                else Status.APPROVED
            )
            moderation = Moderation(first.rule_id, first.rule_name, first.reason) if first else None
            also: TxOp | None = None
            if verdict.flagged and status is Status.APPROVED:
                flag_rule = next(
                    (m.rule_id for m in verdict.matches if Action.FLAG in m.actions), None
                )

                async def also_flag(tx: Transaction) -> None:
                    await tx.enqueue_review(message.id, "flagged", flag_rule, at)

                also = also_flag
            # A clean approval (no rule matched) is recorded by the message's status alone:
            # auditing every ordinary message would bury the decisions worth auditing.
            audit = (
                Audit(ACTOR, f"message.{status.value}", str(message.id), details)
                if verdict.matches
                else None
            )
            updated = await self._verdicts.apply_verdict(
                message, status, moderation, audit=audit, also=also
            )
            if updated is None:
                return
            self._metrics.verdicts.labels(status.value).inc()
            if status is Status.DISAPPROVED and first is not None:
                self._metrics.blocked_by_rule.labels(first.rule_id).inc()
            if status is Status.DISAPPROVED:
                self._events.emit(
                    "message.disapproved",
                    {
                        "message": updated.to_json(),
                        "moderation": moderation.to_json() if moderation else None,
                        "manual": False,
                        **details,
                    },
                )
                if self._disapproved is not None:
                    await self._disapproved(updated, verdict)
            elif verdict.flagged:
                # The webhook event of a rule's flag (not the socket's report acknowledgement).
                self._events.emit("message.flagged", {"message": updated.to_json(), **details})
        await self._verdicts.apply_rule_actions(message, verdict)
