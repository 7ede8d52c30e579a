"""The one place a moderation verdict touches chat: its status, delivery or withdrawal, and
the side actions of the rules that matched (kick, ban, block_user).

The moderation side reaches this module only through ``contracts.VerdictApplier``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from moderation.types import Action, Verdict
from server import protocol
from server.auth import Principal, Role
from server.clock import Clock
from server.hub import Hub
from server.models import Message, Moderation, Status
from server.services.blocks import BlockService
from server.services.decisions import Decisions
from server.services.fanout import Fanout
from server.services.groups import GroupService
from server.storage.ports import AuditRepository, MessageRepository, TxOp
from server.storage.types import Audit

log = logging.getLogger(__name__)

#: How rule side actions are audited: ``moderation:<rule id>@<revision>``.
ACTOR = "moderation"


class VerdictService:
    """Implements ``contracts.VerdictApplier``."""

    def __init__(
        self,
        messages: MessageRepository,
        audit: AuditRepository,
        hub: Hub,
        fanout: Fanout,
        groups: GroupService,
        blocks: BlockService,
        *,
        clock: Clock,
        decisions: Decisions | None = None,
        overturned: Callable[[Message, str], Awaitable[None]] | None = None,
    ) -> None:
        self._messages = messages
        self._audit = audit
        self._hub = hub
        self._fanout = fanout
        self._groups = groups
        self._blocks = blocks
        self._clock = clock
        #: Stores a disapproval's statement of reasons (``decision`` in ``message.moderated``).
        self._decisions = decisions
        #: Called with the message and the person when a disapproved message with media is
        #: approved after all (lifts the quarantine of a known-bad image match).
        self._overturned = overturned

    async def apply_verdict(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        *,
        audit: Audit | None,
        also: TxOp | None = None,
    ) -> Message | None:
        """Record a verdict, then tell the sender and deliver (or withdraw) the message.

        Conditional and idempotent: returns None, sending nothing, if the message was edited,
        deleted or decided since ``message`` was read. ``also`` is a store op committed in the
        same transaction (a review-queue entry). Withdrawing an already delivered message
        (a moderator disapproving it later) sends ``message.deleted`` to its receivers.
        """
        updated = await self._messages.set_status(
            message, status, moderation, self._clock.now(), audit, also
        )
        if updated is None:
            return None
        extra = ""
        if moderation is not None and status is Status.DISAPPROVED:
            extra = ',"moderation":' + protocol.encode_json(moderation.to_json())
            if self._decisions is not None:
                decision = await self._decisions.for_disapproval(updated, moderation)
                extra += ',"decision":' + protocol.encode_json(decision)
        if updated.attachment is not None:
            if (
                self._overturned is not None
                and status is Status.APPROVED
                and message.status is Status.DISAPPROVED
            ):
                # Before the frames: the receivers' links must serve.
                await self._overturned(updated, audit.actor if audit else ACTOR)
            await self._media_frames(message, updated, status, extra)
            return updated
        encoded = protocol.encode_json(updated.to_json())
        self._hub.send(
            (updated.sender,), protocol.message_frame("message.moderated", encoded, extra=extra)
        )
        if status.deliverable and not message.status.deliverable:
            # Receivers who had an earlier version get the edit; others the message itself.
            kind = "message.edited" if message.shown else "message"
            await self._fanout.deliver(updated, protocol.message_frame(kind, encoded))
        elif not status.deliverable and message.shown:
            # Receivers hold a version they may no longer see (an edit was disapproved, or a
            # moderator overturned an approval): for them the message is gone.
            await self._fanout.withdraw(updated)
        return updated

    async def _media_frames(
        self, message: Message, updated: Message, status: Status, extra: str
    ) -> None:
        """``apply_verdict``'s frames for a media message: encoded per viewer (the links)."""
        fanout = self._fanout
        await fanout.send_each(updated, "message.moderated", (updated.sender,), extra=extra)
        if status.deliverable and not message.status.deliverable:
            await fanout.deliver_message(updated, "message.edited" if message.shown else "message")
        elif not status.deliverable and message.shown:
            await fanout.withdraw(updated)

    async def apply_rule_actions(self, message: Message, verdict: Verdict) -> None:
        """Kick or ban the sender from the group, or block them for the receiver, as the
        matched rules say; each failure is logged and the others still run."""
        for match in verdict.matches:
            actor = Principal(
                uid=None,
                role=Role.ADMIN,
                is_api_key=True,
                label=f"{ACTOR}:{match.rule_id}@{match.revision}",
            )
            for action in match.actions:
                try:
                    await self._rule_action(message, action, actor, match.reason)
                except Exception:
                    log.exception("moderation action %s for message %d failed", action, message.id)

    async def _rule_action(
        self, message: Message, action: Action, actor: Principal, reason: str
    ) -> None:
        if action in (Action.KICK, Action.BAN) and message.receiver_type == "group":
            guid, uid = message.receiver, message.sender
            if action is Action.KICK:
                if uid in await self._groups.members(guid):
                    await self._groups.remove_member(actor, guid, uid)
            else:
                # The ban emits ``user.banned`` (by ``moderation:<rule>@<rev>``).
                await self._groups.ban(actor, guid, uid, reason)
        elif action is Action.BLOCK_USER and message.receiver_type == "user":
            await self._blocks.block(message.receiver, [message.sender])
            await self._audit.add_audit(
                Audit(
                    actor.label or ACTOR,
                    "user.block",
                    message.receiver,
                    {"uid": message.sender},
                ),
                self._clock.now(),
            )
