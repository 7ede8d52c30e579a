"""Appeals (issue 15, DSA Art. 20): the user a decision concerns contests it once, within its
``appealUntil``; a person decides (never a rule).

An upheld appeal undoes the measure: a disapproved message is approved and delivered with its
original id and ``sentAt`` (its sender gets ``message.moderated`` approved), a mute or shadow
ban is lifted, a group ban is lifted (a kick has nothing left to undo). Either way the
appellant gets ``moderation.appeal`` with the reason.
"""

from __future__ import annotations

import uuid
from typing import Any

from server import protocol
from server.auth import Principal, Role
from server.clock import Clock
from server.errors import BadRequest, ClientError, Conflict, Forbidden, NotFound
from server.hub import Hub
from server.models import Status
from server.services.contracts import VerdictApplier
from server.services.decisions import Decisions, for_staff, public
from server.services.groups import GroupService
from server.services.restrictions import Restrictions
from server.storage.ports import MessageRepository, SanctionRepository, Transaction
from server.storage.sanctions import AppealRecord
from server.storage.types import Audit

OUTCOMES = {"upheld", "rejected"}
MAX_NOTE = 4000


class AppealClosed(ClientError):
    """An appeal after the decision's ``appealUntil``: 410."""

    code = "ERR_FORBIDDEN"
    status = 410


class Appeals:
    def __init__(
        self,
        store: SanctionRepository,
        decisions: Decisions,
        restrictions: Restrictions,
        messages: MessageRepository,
        verdicts: VerdictApplier,
        groups: GroupService,
        hub: Hub,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._decisions = decisions
        self._restrictions = restrictions
        self._messages = messages
        self._verdicts = verdicts
        self._groups = groups
        self._hub = hub
        self._clock = clock

    async def appeal(self, uid: str, decision_id: str, note: object) -> AppealRecord:
        """``POST /decisions/{decisionId}/appeal {note}``: 404 unknown, 403 not theirs,
        410 past ``appealUntil``, 409 appealed already."""
        if note is None:
            note = ""
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise BadRequest(f"field 'note' must be a string of up to {MAX_NOTE} characters")
        record = await self._decisions.get(decision_id)
        if record is None or (record.uid == uid and not record.notify):
            # A shadow ban's decision is not revealed to the user it concerns.
            raise NotFound("no such decision", {"decisionId": decision_id})
        if record.uid != uid:
            raise Forbidden("only the user a decision concerns may appeal it")
        at = self._clock.now()
        if at > int(record.body.get("appealUntil", 0)):
            raise AppealClosed(
                "the time to appeal this decision has passed",
                {"decisionId": decision_id, "appealUntil": record.body.get("appealUntil")},
            )
        appeal = AppealRecord("a_" + uuid.uuid4().hex[:16], decision_id, uid, note, "open", at=at)
        stored = await self._store.add_appeal(
            appeal,
            Audit(uid, "appeal.create", decision_id, {"appealId": appeal.appeal_id}),
        )
        if not stored:
            raise Conflict("this decision has been appealed already", {"decisionId": decision_id})
        return appeal

    async def queue(self, *, limit: int) -> list[dict[str, Any]]:
        """The open appeals, oldest first, each with its decision as staff see it."""
        out = []
        for appeal in await self._store.appeals("open", limit=limit):
            decision = await self._decisions.get(appeal.decision_id)
            entry: dict[str, Any] = {
                "state": "appeals",
                "appeal": appeal.to_json(),
                "decision": for_staff(decision) if decision else None,
                "at": appeal.at,
            }
            if decision is not None and decision.message_id:
                message = await self._messages.get_message(decision.message_id)
                if message is not None:
                    entry["message"] = message.to_json()
            out.append(entry)
        return out

    async def decide(
        self, appeal_id: str, outcome: object, reason: object, actor: str
    ) -> dict[str, Any]:
        """``POST /moderation/appeals/{appealId}/decide {outcome, reason}`` (staff)."""
        if outcome not in OUTCOMES:
            raise BadRequest("field 'outcome' must be upheld or rejected", {"field": "outcome"})
        if not isinstance(reason, str) or not reason.strip() or len(reason) > 2000:
            raise BadRequest("field 'reason' must be 1-2000 characters", {"field": "reason"})
        appeal = await self._store.get_appeal(appeal_id)
        if appeal is None:
            raise NotFound("no such appeal", {"appealId": appeal_id})
        if appeal.state != "open":
            raise Conflict("this appeal has been decided", {"appealId": appeal_id})
        decision = await self._decisions.get(appeal.decision_id)
        assert decision is not None
        at = self._clock.now()
        closed = await self._store.decide_appeal(
            appeal_id,
            str(outcome),
            reason,
            actor,
            at,
            Audit(
                actor,
                f"appeal.{outcome}",
                decision.uid,
                {"appealId": appeal_id, "decisionId": decision.decision_id, "reason": reason},
            ),
        )
        if not closed:
            raise Conflict("this appeal has been decided", {"appealId": appeal_id})
        if outcome == "upheld":
            await self._undo(decision.measure, decision.message_id, decision, actor)
        frame = {
            "appealId": appeal_id,
            "decisionId": decision.decision_id,
            "outcome": outcome,
            "reason": reason,
        }
        self._hub.send((appeal.uid,), protocol.encode("moderation.appeal", frame))
        done = await self._store.get_appeal(appeal_id)
        assert done is not None
        return {**done.to_json(), "decision": public(decision)}

    async def _undo(self, measure: str, message_id: int, decision: Any, actor: str) -> None:
        if measure == "message_disapproved" and message_id:
            message = await self._messages.get_message(message_id)
            if message is None or message.status is not Status.DISAPPROVED or message.deleted_at:
                return

            async def close(tx: Transaction) -> None:
                await tx.close_review(message.id, "approved", actor, self._clock.now())

            await self._verdicts.apply_verdict(
                message,
                Status.APPROVED,
                None,
                audit=Audit(
                    actor,
                    "message.approved",
                    str(message.id),
                    {"manual": True, "appeal": decision.decision_id},
                ),
                also=close,
            )
        elif measure in ("mute", "shadow_ban"):
            found = await self._restrictions.of_decision(decision.decision_id)
            if found is not None and not found.lifted_at:
                await self._restrictions.lift(actor, decision.uid, found.restriction_id)
        elif measure == "ban":
            guid = str(decision.staff.get("guid", ""))
            if guid and await self._groups.is_banned(guid, decision.uid):
                staff = Principal(uid=None, role=Role.ADMIN, is_api_key=True, label=actor)
                await self._groups.unban(staff, guid, decision.uid)

    async def strikes(self, uid: str) -> dict[str, Any]:
        """A user's strike history for moderators: decisions (with staff details), appeals,
        restrictions."""
        decisions = await self._decisions.history(uid)
        appeals = {a.decision_id: a for a in await self._store.appeals_of(uid)}
        await self._restrictions.load()
        return {
            "uid": uid,
            "decisions": [
                {
                    **for_staff(d),
                    "appeal": appeals[d.decision_id].to_json()
                    if d.decision_id in appeals
                    else None,
                }
                for d in decisions
            ],
            "restrictions": [r.to_json() for r in self._restrictions.of_user(uid)],
        }


class ReviewHooks:
    """What the review desk asks of this side: the ``appeals`` queue, and the reporters'
    ``report.outcome`` once staff decide on a reported message."""

    def __init__(self, appeals: Appeals, decisions: Decisions, reports: Any, hub: Hub) -> None:
        self._appeals = appeals
        self._decisions = decisions
        self._reports = reports  # ModerationRepository (reports_for)
        self._hub = hub

    async def appeal_items(self, *, limit: int) -> list[dict[str, Any]]:
        return await self._appeals.queue(limit=limit)

    async def reviewed(self, message_id: int, sender: str, *, approve: bool) -> None:
        reports = await self._reports.reports_for(message_id)
        if not reports:
            return
        decision_id = None
        if not approve:
            for d in await self._decisions.history(sender, limit=50):
                if d.message_id == message_id and d.measure == "message_disapproved":
                    decision_id = d.decision_id
                    break
        for report in reports:
            body: dict[str, Any] = {
                "reportId": report["id"],
                "messageId": message_id,
                "outcome": "not_actioned" if approve else "actioned",
            }
            if decision_id is not None:
                body["decisionId"] = decision_id
            self._hub.send((report["reporter"],), protocol.encode("report.outcome", body))
