"""Escalation ladders per rule (issue 15 item 4): repeated violations of one rule within a
window go warn -> mute -> kick -> ban.

A ladder is set per rule (``PUT /moderation/rules/{ruleId}/escalation``)::

    {"windowSeconds": 86400,
     "steps": [{"violations": 2, "measure": "mute", "durationSeconds": 600},
               {"violations": 3, "measure": "kick"},
               {"violations": 4, "measure": "ban"}]}

Every disapproval already carries its statement of reasons: the first is the warning. When a
rule disapproves a sender's message, the sender's disapprovals by that rule within the window
are counted (the stored decisions, so it holds across restarts and processes); the step whose
``violations`` equals the count is applied, by ``moderation:<rule>@<revision>``, with its own
decision (source ``rule``). Past the last step, the last step applies again. A mute is scoped
to the group of a group message, else global (0 seconds: no end). Kick and ban apply to group
messages; on a 1:1 message they are skipped (there is no group to leave), which the audit log
records.
"""

from __future__ import annotations

import logging
from typing import Any

from moderation.types import DISAPPROVING, Verdict, VerdictStatus
from server.auth import Principal, Role
from server.clock import Clock
from server.errors import BadRequest
from server.models import Message
from server.services.decisions import Decisions
from server.services.groups import GroupService
from server.services.restrictions import Restrictions
from server.storage.ports import AuditRepository, SanctionRepository
from server.storage.types import Audit

log = logging.getLogger(__name__)

MEASURES = ("mute", "kick", "ban")
MAX_STEPS = 10
MAX_WINDOW = 366 * 86_400


def _key(rule_id: str) -> str:
    return f"escalation:{rule_id}"


def parse_ladder(body: object) -> dict[str, Any] | None:
    """A ladder from a request body (None or no steps: no ladder); raises BadRequest."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", {})

    def bad(field: str, why: str) -> BadRequest:
        return BadRequest(f"field '{field}' {why}", {"field": field})

    window = body.get("windowSeconds", 86_400)
    if isinstance(window, bool) or not isinstance(window, int) or not 60 <= window <= MAX_WINDOW:
        raise bad("windowSeconds", "must be an integer 60-31622400")
    steps = body.get("steps", [])
    if not isinstance(steps, list) or len(steps) > MAX_STEPS:
        raise bad("steps", f"must be a list of at most {MAX_STEPS} steps")
    parsed: list[dict[str, Any]] = []
    for i, step in enumerate(steps):
        name = f"steps[{i}]"
        if not isinstance(step, dict):
            raise bad(name, "must be an object")
        n, measure = step.get("violations"), step.get("measure")
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= 1000:
            raise bad(f"{name}.violations", "must be an integer 2-1000 (the first is the warning)")
        if parsed and n <= parsed[-1]["violations"]:
            raise bad(f"{name}.violations", "must grow from step to step")
        if measure not in MEASURES:
            raise bad(f"{name}.measure", "must be mute, kick or ban")
        out: dict[str, Any] = {"violations": n, "measure": measure}
        if measure == "mute":
            d = step.get("durationSeconds", 0)
            if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= MAX_WINDOW:
                raise bad(f"{name}.durationSeconds", "must be an integer 0-31622400 (0: no end)")
            out["durationSeconds"] = d
        parsed.append(out)
    return {"windowSeconds": window, "steps": parsed} if parsed else None


class EscalationLadders:
    def __init__(
        self,
        sanctions: SanctionRepository,
        audit: AuditRepository,
        decisions: Decisions,
        restrictions: Restrictions,
        groups: GroupService,
        *,
        clock: Clock,
    ) -> None:
        self._sanctions = sanctions
        self._audit = audit
        self._decisions = decisions
        self._restrictions = restrictions
        self._groups = groups
        self._clock = clock

    async def ladder(self, rule_id: str) -> dict[str, Any] | None:
        found = await self._sanctions.get_setting(_key(rule_id))
        return found if isinstance(found, dict) else None

    async def set_ladder(self, actor: str, rule_id: str, body: object) -> dict[str, Any] | None:
        ladder = parse_ladder(body)
        await self._sanctions.put_setting(
            _key(rule_id),
            ladder,
            self._clock.now(),
            Audit(actor, "rule.escalation", rule_id, {"ladder": ladder}),
        )
        return ladder

    async def after_disapproval(self, message: Message, verdict: Verdict) -> None:
        """Called once a rule's disapproval is stored; never raises (logged)."""
        try:
            await self._after_disapproval(message, verdict)
        except Exception:
            log.exception("escalating after message %d failed", message.id)

    async def _after_disapproval(self, message: Message, verdict: Verdict) -> None:
        if verdict.status is not VerdictStatus.DISAPPROVED:
            return
        match = next(
            (m for m in verdict.matches if any(a in DISAPPROVING for a in m.actions)), None
        )
        if match is None:
            return
        ladder = await self.ladder(match.rule_id)
        if ladder is None:
            return
        since = self._clock.now() - int(ladder["windowSeconds"])
        count = sum(
            1
            for d in await self._decisions.history(message.sender)
            if d.measure == "message_disapproved"
            and d.body.get("ruleId") == match.rule_id
            and d.at >= since
        )
        steps = ladder["steps"]
        step = next((s for s in steps if s["violations"] == count), None)
        if step is None and count > steps[-1]["violations"]:
            step = steps[-1]
        if step is None:
            return
        label = f"moderation:{match.rule_id}@{match.revision}"
        actor = Principal(uid=None, role=Role.ADMIN, is_api_key=True, label=label)
        window_h = round(int(ladder["windowSeconds"]) / 3600, 1)
        reason = f"{count} violations of rule {match.rule_id!r} within {window_h:g} h"
        in_group = message.receiver_type == "group"
        if step["measure"] == "mute":
            duration = int(step.get("durationSeconds", 0))
            body: dict[str, Any] = {
                "kind": "mute",
                "until": self._clock.now() + duration if duration else 0,
                "reason": reason,
            }
            if in_group:
                body["guid"] = message.receiver
            await self._restrictions.impose(actor, message.sender, body)
        elif not in_group:
            await self._audit.add_audit(
                Audit(label, "escalation.skipped", message.sender,
                      {"measure": step["measure"], "why": "a 1:1 message has no group",
                       "violations": count}),
                self._clock.now(),
            )  # fmt: skip
        elif step["measure"] == "kick":
            if message.sender in await self._groups.members(message.receiver):
                await self._groups.remove_member(actor, message.receiver, message.sender)
        else:
            await self._groups.ban(actor, message.receiver, message.sender, reason)
