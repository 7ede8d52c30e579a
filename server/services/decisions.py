"""Statements of reasons (issue 15, DSA Art. 17): every measure against a message or a user is
a stored decision that names its ground and explains it in plain words.

People get the ``body`` of a decision (PROTOCOL.md, "Decisions, appeals, restrictions"); the
raw detail (the rule's reason, the matched term, the acting moderator) stays in ``staff``,
which only staff views show. A rule names its ground through the operator's terms catalogue:
each clause lists the rules it covers (a rule in no clause falls under ``other``).

Who is told: a kicked, banned or muted user gets ``moderation.decision``; the sender of a
disapproved message gets the decision inside ``message.moderated`` (see ``verdicts.py``).
A shadow ban's decision is stored (staff see it in the strike history) but never sent and not
listed by ``GET /me/decisions``: telling the user would defeat it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

from server import protocol
from server.auth import Principal
from server.clock import Clock
from server.errors import BadRequest
from server.hub import Hub
from server.models import Message, Moderation
from server.services.audit import actor_label
from server.storage.ports import ModerationRepository, SanctionRepository
from server.storage.sanctions import DecisionRecord
from server.storage.types import Audit

#: The default appeal window (DSA Art. 20: at least six months).
DEFAULT_APPEAL_WINDOW = 183 * 86_400

#: Where the catalogue is kept (``SanctionRepository.get_setting``).
TERMS_KEY = "terms"

#: Measures that are never told to the user they concern.
SILENT_MEASURES = frozenset({"shadow_ban"})

DEFAULT_TERMS: list[dict[str, Any]] = [
    {
        "clause": "harassment",
        "title": "Harassment and abuse",
        "explanation": "Insults, abuse and harassment of other people are not allowed here.",
        "rules": ["profanity", "ai-toxicity", "ai-toxicity-flag", "negative-sentiment"],
    },
    {
        "clause": "harmful_content",
        "title": "Harmful content",
        "explanation": "Threats, hate, violence and other harmful content are not allowed here.",
        "rules": ["ai-harmful-content", "ai-harmful-content-flag"],
    },
    {
        "clause": "spam",
        "title": "Spam and scams",
        "explanation": "Unsolicited advertising, scams and repeated messages are not allowed here.",
        "rules": ["spam", "ai-scam", "openai-spam-scam"],
    },
    {
        "clause": "personal_data",
        "title": "Contact details and leaving the platform",
        "explanation": "Sharing phone numbers, e-mail addresses or moving the conversation to "
        "another service is not allowed here.",
        "rules": ["contact-phone", "contact-email", "platform-circumvention"],
    },
    {
        "clause": "sexual_content",
        "title": "Sexual content",
        "explanation": "Nudity and sexual content are not allowed here.",
        "rules": ["ai-image-nudity"],
    },
    {
        "clause": "other",
        "title": "Community rules",
        "explanation": "This goes against the community rules of this service.",
        "rules": [],
    },
]

#: The plain-words explanation of a measure taken without a rule's clause.
MEASURE_TEXT = {
    "message_disapproved": "Your message was not delivered.",
    "kick": "You were removed from the group.",
    "ban": "You were banned from the group.",
    "mute": "You cannot send messages for now.",
    "shadow_ban": "Your messages are restricted.",
}


def validate_terms(value: object) -> list[dict[str, Any]]:
    """The catalogue as the operator sent it (``PUT /moderation/terms``), checked."""
    if not isinstance(value, list) or not value:
        raise BadRequest("field 'terms' must be a non-empty list", {"field": "terms"})
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = {"field": f"terms[{i}]"}
        if not isinstance(item, dict):
            raise BadRequest("each clause must be an object", where)
        clause, explanation = item.get("clause"), item.get("explanation")
        title, rules = item.get("title", clause), item.get("rules", [])
        if not isinstance(clause, str) or not protocol.is_ident(clause) or clause in seen:
            raise BadRequest("'clause' must be a unique id of [A-Za-z0-9_-]", where)
        if not isinstance(explanation, str) or not explanation.strip() or len(explanation) > 2000:
            raise BadRequest("'explanation' must be 1-2000 characters", where)
        if not isinstance(title, str) or len(title) > 200:
            raise BadRequest("'title' must be a string of up to 200 characters", where)
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise BadRequest("'rules' must be a list of rule ids", where)
        seen.add(clause)
        out.append({"clause": clause, "title": title, "explanation": explanation, "rules": rules})
    return out


def public(record: DecisionRecord) -> dict[str, Any]:
    """The decision as the user it concerns sees it."""
    return dict(record.body)


def for_staff(record: DecisionRecord) -> dict[str, Any]:
    """The decision with its staff-only details (``details``), its user and its time."""
    return {
        **record.body,
        "uid": record.uid,
        "messageId": record.message_id or None,
        "at": record.at,
        "notified": record.notify,
        "details": record.staff,
    }


def rule_from_label(label: str) -> tuple[str, int] | None:
    """``moderation:<rule id>@<revision>`` (how rule side actions are audited) as its parts."""
    if not label.startswith("moderation:"):
        return None
    rule_id, _, revision = label[len("moderation:") :].rpartition("@")
    return (rule_id, int(revision)) if rule_id and revision.isdigit() else None


class Decisions:
    """Builds, stores and tells decisions; keeps the terms catalogue."""

    def __init__(
        self,
        store: SanctionRepository,
        rules: ModerationRepository,
        hub: Hub,
        *,
        clock: Clock,
        appeal_window: int = DEFAULT_APPEAL_WINDOW,
    ) -> None:
        self._store = store
        self._rules = rules
        self._hub = hub
        self._clock = clock
        self.appeal_window = appeal_window

    # ----------------------------------------------------------------- the catalogue

    async def terms(self) -> list[dict[str, Any]]:
        stored = await self._store.get_setting(TERMS_KEY)
        return stored if isinstance(stored, list) else copy.deepcopy(DEFAULT_TERMS)

    async def put_terms(self, value: object, actor: str) -> list[dict[str, Any]]:
        terms = validate_terms(value)
        await self._store.put_setting(
            TERMS_KEY,
            terms,
            self._clock.now(),
            Audit(actor, "terms.update", TERMS_KEY, {"clauses": [t["clause"] for t in terms]}),
        )
        return terms

    async def ground(self, rule_id: str | None, clause: str | None = None) -> dict[str, Any]:
        """The clause (named, or the one covering ``rule_id``, else ``other``) with its text."""
        terms = await self.terms()
        found = next((t for t in terms if clause is not None and t["clause"] == clause), None)
        if found is None and rule_id is not None:
            found = next((t for t in terms if rule_id in t["rules"]), None)
        if found is None:
            found = next((t for t in terms if t["clause"] == "other"), terms[-1])
        return found

    # ----------------------------------------------------------------- recording

    async def record(
        self,
        *,
        uid: str,
        measure: str,
        scope: str,
        until: int,
        source: str,
        actor: str,
        rule: tuple[str, int] | None = None,
        message_id: int = 0,
        reason: str = "",
        clause: str | None = None,
        automated_detection: bool | None = None,
        staff: dict[str, Any] | None = None,
        notify: bool = True,
        tell_now: bool = True,
    ) -> DecisionRecord:
        """Store a decision (audited as ``decision.<measure>`` by ``actor``) and, for a kick,
        ban or mute, send ``moderation.decision`` to the user. Returns the stored record."""
        at = self._clock.now()
        ground = await self.ground(rule[0] if rule else None, clause)
        explanation = ground["explanation"]
        if measure in MEASURE_TEXT and measure != "message_disapproved":
            explanation = f"{MEASURE_TEXT[measure]} {explanation}"
        body: dict[str, Any] = {
            "decisionId": "d_" + uuid.uuid4().hex[:16],
            "measure": measure,
            "scope": scope,
            "until": until,
            "source": source,
        }
        if rule is not None:
            body["ruleId"], body["ruleRevision"] = rule
        automated = source == "rule"
        body.update(
            {
                "automatedDetection": automated
                if automated_detection is None
                else automated_detection,
                "automatedDecision": automated,
                "ground": {"type": "terms", "clause": ground["clause"]},
                "explanation": explanation,
                "appealUntil": at + self.appeal_window,
            }
        )
        if message_id:
            body["messageId"] = message_id
        notify = notify and measure not in SILENT_MEASURES
        details = {"reason": reason, "actor": actor, **(staff or {})}
        record = DecisionRecord(
            body["decisionId"], uid, message_id, measure, body, details, notify, at
        )
        await self._store.add_decision(
            record,
            Audit(
                actor,
                f"decision.{measure}",
                uid,
                {
                    "decisionId": record.decision_id,
                    "scope": scope,
                    "until": until,
                    "source": source,
                    "messageId": message_id or None,
                    "reason": reason,
                },
            ),
        )
        if tell_now:
            self.tell(record)
        return record

    def tell(self, record: DecisionRecord) -> None:
        """Send ``moderation.decision`` for a kick, ban or mute the user is told about (a
        caller that passed ``tell_now=False`` calls it once the measure is in force)."""
        if record.notify and record.measure != "message_disapproved":
            self._hub.send(
                (record.uid,), protocol.encode("moderation.decision", {"decision": record.body})
            )

    async def for_disapproval(self, message: Message, moderation: Moderation) -> dict[str, Any]:
        """The decision for a message just disapproved (by a rule, or ``manual``: a moderator),
        stored; the body the sender's ``message.moderated`` carries."""
        manual = moderation.rule_id == "manual"
        reported = bool(await self._rules.reports_for(message.id))
        rule: tuple[str, int] | None = None
        if not manual:
            stored = await self._rules.rule(moderation.rule_id)
            rule = (moderation.rule_id, int(stored["revision"]) if stored else 0)
        scope = f"group:{message.receiver}" if message.receiver_type == "group" else "global"
        record = await self.record(
            uid=message.sender,
            measure="message_disapproved",
            scope=scope,
            until=0,
            source="rule" if not manual else ("report" if reported else "moderator"),
            actor="moderator" if manual else f"moderation:{moderation.rule_id}",
            rule=rule,
            message_id=message.id,
            reason=moderation.reason,
            automated_detection=not reported if manual else True,
            staff={"ruleName": moderation.rule_name},
        )
        return public(record)

    async def for_group_measure(
        self, actor: Principal, guid: str, uid: str, measure: str, reason: str = ""
    ) -> None:
        """A kick or a ban from a group, by a rule (``moderation:<rule>@<rev>``) or a person."""
        label = actor_label(actor)
        rule = rule_from_label(label)
        await self.record(
            uid=uid,
            measure=measure,
            scope=f"group:{guid}",
            until=0,
            source="rule" if rule else "moderator",
            actor=label,
            rule=rule,
            reason=reason,
            staff={"guid": guid},
        )

    # ----------------------------------------------------------------- reading

    async def about_messages(self, message_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """The public body of the newest decision about each message that has one."""
        found = await self._store.decisions_for_messages(message_ids)
        return {mid: public(record) for mid, record in found.items()}

    async def get(self, decision_id: str) -> DecisionRecord | None:
        return await self._store.get_decision(decision_id)

    async def mine(self, uid: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """The user's own decisions, newest first, as they see them (shadow bans left out)."""
        return [public(r) for r in await self._store.decisions_of(uid, limit=limit) if r.notify]

    async def history(self, uid: str, *, limit: int = 500) -> list[DecisionRecord]:
        return await self._store.decisions_of(uid, limit=limit)
