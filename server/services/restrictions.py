"""Restrictions on a user (issue 15): timed mutes and shadow bans, server-wide or per group, and
per-group slow mode.

Restrictions are stored (they survive restarts) and cached here in full, lifted ones too:
whether a message is hidden by a shadow ban depends on whether a ban stood when it was sent.
The cache is loaded at start and reloaded every few seconds on the send path, so another
process's new restriction takes effect within that time (at once with ``--redis-url``: each
write is published and the other processes reload, ``server/shared_state.py``).

- A mute refuses the user's sends in its scope with ``ERR_MUTED`` (``details.until``, 0 for
  no end), before anything is stored.
- A shadow-banned user's messages are acknowledged and moderated like anyone's, but
  ``Fanout`` never delivers them and history shows them to their sender (and staff) only.
  It suits spam bots; a person should get a mute, which comes with a statement of reasons.
- Slow mode: a group with ``slowModeSeconds`` n refuses a member's second send within n
  seconds with ``ERR_RATE_LIMITED`` (``details.retryAfterMs``); the last send is kept by a
  ``SendSpacing`` (in Redis with ``--redis-url``: whichever process the member is on).
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from server.auth import Principal
from server.clock import Clock
from server.errors import BadRequest, ClientError, NotFound, RateLimited
from server.models import Message
from server.ratelimit import SendSpacing
from server.services.audit import actor_label
from server.services.decisions import Decisions, rule_from_label
from server.services.groups import GroupService
from server.services.users import UserService
from server.shared_state import NO_SHARING, Invalidator
from server.storage.ports import SanctionRepository
from server.storage.sanctions import RestrictionRecord
from server.storage.types import Audit

KINDS = ("mute", "shadow_ban")

#: Seconds between reloads of the cache on the send path (other processes' changes).
RELOAD_EVERY = 5.0

#: Slow mode's upper bound (a day).
MAX_SLOW_MODE = 86_400


class Muted(ClientError):
    code = "ERR_MUTED"
    status = 403


class Restrictions:
    """Imposes, lifts and enforces restrictions."""

    def __init__(
        self,
        store: SanctionRepository,
        decisions: Decisions,
        users: UserService,
        groups: GroupService,
        *,
        clock: Clock,
        shared: Invalidator = NO_SHARING,
        spacing: SendSpacing | None = None,
    ) -> None:
        self._store = store
        self._spacing = spacing or SendSpacing(clock=clock.monotonic)
        self._shared = shared
        self._decisions = decisions
        self._users = users
        self._groups = groups
        self._clock = clock
        self._by_uid: dict[str, list[RestrictionRecord]] = {}
        self._slow: dict[str, int] = {}
        self._loaded_at = -math.inf

    async def load(self) -> None:
        """(Re)read every restriction and slow mode from the store."""
        by_uid: dict[str, list[RestrictionRecord]] = {}
        for record in await self._store.restrictions():
            by_uid.setdefault(record.uid, []).append(record)
        self._by_uid = by_uid
        self._slow = await self._store.slow_modes()
        self._loaded_at = time.monotonic()

    async def _fresh(self) -> None:
        loaded_at = self._loaded_at
        if time.monotonic() - loaded_at > RELOAD_EVERY:
            # Marked first: the sends arriving while it reads do not each start a reload.
            self._loaded_at = time.monotonic()
            try:
                await self.load()
            except BaseException:
                self._loaded_at = loaded_at  # the next send tries again
                raise

    # ----------------------------------------------------------------- enforcement

    async def check_send(self, uid: str, receiver: str, receiver_type: str) -> None:
        """Raise ``ERR_MUTED`` or (slow mode) ``ERR_RATE_LIMITED`` for a send, else record it
        for slow mode."""
        await self._fresh()
        now = self._clock.now()
        for r in self._by_uid.get(uid, ()):
            if r.kind == "mute" and r.active_at(now) and r.covers(receiver, receiver_type):
                raise Muted(
                    "you are muted" + (" in this group" if r.scope != "global" else ""),
                    {"until": r.until, "scope": r.scope, "decisionId": r.decision_id},
                )
        seconds = self._slow.get(receiver, 0) if receiver_type == "group" else 0
        if seconds > 0:
            wait_ms = await self._spacing.take(f"{receiver}\n{uid}", seconds)
            if wait_ms:
                limited = RateLimited(wait_ms)
                limited.message = f"this group is in slow mode: one message every {seconds} s"
                limited.details["slowModeSeconds"] = seconds
                raise limited

    def hidden(self, message: Message) -> bool:
        """Whether a shadow ban stood over ``message`` when it was sent (never delivered, and
        in no one's history but its sender's)."""
        for r in self._by_uid.get(message.sender, ()):
            if (
                r.kind == "shadow_ban"
                and r.active_at(message.sent_at, through_lift=True)
                and r.covers(message.receiver, message.receiver_type)
            ):
                return True
        return False

    def shadowed(self, uid: str, receiver: str, receiver_type: str) -> bool:
        """Whether a shadow ban over ``uid`` covers ``receiver`` now."""
        now = self._clock.now()
        return any(
            r.kind == "shadow_ban" and r.active_at(now) and r.covers(receiver, receiver_type)
            for r in self._by_uid.get(uid, ())
        )

    def shadowed_in(self, receiver: str, receiver_type: str) -> list[str]:
        """The uids a shadow ban covers in this conversation now (their receipts stay unseen)."""
        return [uid for uid in self._by_uid if self.shadowed(uid, receiver, receiver_type)]

    def visible_to(self, messages: list[Message], viewer: str | None) -> list[Message]:
        """``messages`` without those hidden from ``viewer`` (staff: None see all)."""
        if viewer is None or not self._by_uid:
            return messages
        return [m for m in messages if m.sender == viewer or not self.hidden(m)]

    # ----------------------------------------------------------------- imposing, lifting

    async def impose(
        self,
        actor: Principal,
        uid: str,
        body: dict[str, Any],
    ) -> RestrictionRecord:
        """``POST /users/{uid}/restrictions {kind, guid?, until, reason}``."""
        kind, guid, until, reason = (
            body.get("kind"),
            body.get("guid"),
            body.get("until", 0),
            body.get("reason", ""),
        )
        if kind not in KINDS:
            raise BadRequest("field 'kind' must be mute or shadow_ban", {"field": "kind"})
        if not isinstance(until, int) or isinstance(until, bool) or until < 0:
            raise BadRequest("field 'until' must be a Unix time, 0 for no end", {"field": "until"})
        now = self._clock.now()
        if until and until <= now:
            raise BadRequest("field 'until' is in the past", {"field": "until"})
        if not isinstance(reason, str) or len(reason) > 2000:
            raise BadRequest("field 'reason' must be a string", {"field": "reason"})
        if guid is not None and not isinstance(guid, str):
            raise BadRequest("field 'guid' must be a group id", {"field": "guid"})
        await self._users.require_user(uid)
        scope = "global"
        if guid is not None:
            await self._groups.require_group(guid)
            scope = f"group:{guid}"
        label = actor_label(actor)
        rule = rule_from_label(label)  # an escalation ladder's step (services/escalation.py)
        decision = await self._decisions.record(
            uid=uid,
            measure=kind,
            scope=scope,
            until=until,
            source="rule" if rule else "moderator",
            actor=label,
            rule=rule,
            tell_now=False,  # told below, once the restriction is in force
            reason=reason,
            clause=body.get("clause") if isinstance(body.get("clause"), str) else None,
        )
        record = RestrictionRecord(
            "r_" + uuid.uuid4().hex[:16], uid, kind, scope, until, reason,
            decision.decision_id, label, now,
        )  # fmt: skip
        await self._store.add_restriction(
            record, Audit(label, f"restriction.{kind}", uid, record.to_json())
        )
        self._by_uid.setdefault(uid, []).append(record)
        self._shared.publish("restrictions", uid)
        self._decisions.tell(decision)
        return record

    async def lift(
        self, actor: Principal | str, uid: str, restriction_id: str
    ) -> RestrictionRecord:
        """``DELETE /users/{uid}/restrictions/{restrictionId}`` (also an upheld appeal)."""
        await self._fresh()
        found = next(
            (r for r in self._by_uid.get(uid, ()) if r.restriction_id == restriction_id), None
        )
        if found is None:
            await self.load()
            found = next(
                (r for r in self._by_uid.get(uid, ()) if r.restriction_id == restriction_id), None
            )
        if found is None or found.lifted_at:
            raise NotFound("no such restriction", {"restrictionId": restriction_id})
        label = actor if isinstance(actor, str) else actor_label(actor)
        now = self._clock.now()
        await self._store.lift_restriction(
            restriction_id,
            now,
            Audit(label, f"restriction.{found.kind}.lift", uid, {"restrictionId": restriction_id}),
        )
        await self.load()
        self._shared.publish("restrictions", uid)
        return next(r for r in self._by_uid[uid] if r.restriction_id == restriction_id)

    async def of_decision(self, decision_id: str) -> RestrictionRecord | None:
        await self.load()
        for records in self._by_uid.values():
            for r in records:
                if r.decision_id == decision_id:
                    return r
        return None

    def of_user(self, uid: str) -> list[RestrictionRecord]:
        return list(self._by_uid.get(uid, ()))

    # ----------------------------------------------------------------- slow mode

    async def set_slow_mode(self, actor: Principal, guid: str, seconds: object) -> int:
        if (
            not isinstance(seconds, int)
            or isinstance(seconds, bool)
            or not 0 <= seconds <= MAX_SLOW_MODE
        ):
            raise BadRequest(
                f"field 'slowModeSeconds' must be an integer in 0..{MAX_SLOW_MODE}",
                {"field": "slowModeSeconds"},
            )
        await self._groups.require_group(guid)
        label = actor_label(actor)
        await self._store.set_slow_mode(
            guid,
            seconds,
            self._clock.now(),
            Audit(label, "group.slow_mode", guid, {"slowModeSeconds": seconds}),
        )
        self._slow[guid] = seconds
        self._shared.publish("restrictions", guid)
        return seconds

    async def invalidate(self, kind: str, key: str) -> None:
        """Another process imposed or lifted a restriction or set a slow mode: reload."""
        await self.load()

    def slow_mode(self, guid: str) -> int:
        return self._slow.get(guid, 0)
