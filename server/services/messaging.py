"""Messages: send, edit, delete, history, receipts, typing and user reports.

The hot path is ``post_message``: checks from caches, one store insert (group commit), one
encode, then the hub. A moderated message goes through the ``ModerationGate``; its verdict
comes back through ``verdicts.py``, never through here.

A media message (``image``/``video``/``audio``/``file`` with a ``mediaId``) takes its own
path, ``media_messages.MediaSends``; its frames are encoded per viewer.

One piece past 400 lines, not split: every path here shares the same checks (rate, blocks,
membership, restrictions, the parent of a reply) and the same hub and fan-out calls.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from server import conversations, permissions, protocol
from server.auth import Principal
from server.clock import Clock
from server.conversations import Conversation, conversation_id
from server.errors import (
    BadRequest,
    Banned,
    Blocked,
    ClientError,
    Forbidden,
    NotAMember,
    NotFound,
)
from server.hub import Connection, Hub
from server.models import Message, Scope, Status, User
from server.protocol import SendMessage
from server.ratelimit import RateLimiter, TypingThrottle
from server.services.blocks import BlockService
from server.services.contracts import EventSink, MediaAttachments, ModerationGate
from server.services.fanout import Fanout
from server.services.groups import GroupService
from server.services.media_messages import MediaSends
from server.services.probation import Probation
from server.services.reports import ReportOptions, Reports
from server.services.restrictions import Restrictions
from server.services.users import UserService
from server.storage.ports import MessageRepository, ModerationRepository
from server.storage.types import NewMessage


class MessagingService:
    """Sending and reading messages, with their permissions and fan-out."""

    def __init__(
        self,
        store: MessageRepository,
        reports: ModerationRepository,
        hub: Hub,
        users: UserService,
        blocks: BlockService,
        groups: GroupService,
        fanout: Fanout,
        *,
        gate: ModerationGate,
        events: EventSink,
        rate_limiter: RateLimiter,
        clock: Clock,
        media: MediaAttachments | None = None,
        restrictions: Restrictions | None = None,
        typing: TypingThrottle | None = None,
        report_options: ReportOptions | None = None,
        parent_check: Callable[[str, SendMessage], Awaitable[None]] | None = None,
        probation: Probation | None = None,
    ) -> None:
        self._probation = probation  # new accounts: no links or media (services/probation.py)
        self._store = store
        #: ``parentId`` in the sender's conversation (``services/reactions.ParentCheck``).
        self._parent_check = parent_check
        #: Mutes, slow mode and shadow bans (``services/restrictions.py``).
        self._restrictions = restrictions
        self._reports = reports
        self._hub = hub
        self._users = users
        self._blocks = blocks
        self._groups = groups
        self._fanout = fanout
        self._gate = gate
        self._events = events
        self._rate = rate_limiter
        self._clock = clock
        self._typing = typing or TypingThrottle(clock=clock.monotonic)
        self._media_sends = MediaSends(store, fanout, gate, media, clock=clock)
        #: Reports as notices: routed to group moderators, escalated (started by the app).
        self.reports = Reports(
            reports, hub, groups, message=self.get_message, can_view=self.can_view,
            events=events, clock=clock, options=report_options or ReportOptions(),
        )  # fmt: skip

    # ----------------------------------------------------------------- sending

    async def _check_can_send(self, sender: User, receiver: str, receiver_type: str) -> None:
        if receiver_type == "user":
            if await self._users.user(receiver) is None:
                raise NotFound(f"user {receiver!r} not found", {"receiver": receiver})
            if await self._blocks.is_blocked_between(sender.uid, receiver):
                raise Blocked("a block stands between you and this user", {"receiver": receiver})
            return
        await self._groups.require_group(receiver)
        members = await self._groups.members(receiver)
        if sender.uid in members:
            return  # a ban removes the membership, so a member is not banned
        if await self._groups.is_banned(receiver, sender.uid):
            raise Banned("you are banned from this group", {"guid": receiver})
        raise NotAMember("you are not a member of this group", {"guid": receiver})

    async def _send_checks(self, sender: User, cmd: SendMessage) -> None:
        await self._rate.take(sender.uid)
        await self._check_can_send(sender, cmd.receiver, cmd.receiver_type)
        if cmd.parent_id is not None and self._parent_check is not None:
            await self._parent_check(sender.uid, cmd)
        if self._probation is not None:
            await self._probation.check_send(sender, cmd)
        if self._restrictions is not None:  # last: it records the send for slow mode
            await self._restrictions.check_send(sender.uid, cmd.receiver, cmd.receiver_type)

    async def post_message(
        self,
        sender: User,
        cmd: SendMessage,
        *,
        origin: Connection | None = None,
        frame_id: str | None = None,
    ) -> Message:
        """Check, store durably (idempotent on muid), acknowledge, then deliver or hold."""
        if cmd.media_id is not None:
            return await self._media_sends.send(
                sender, cmd, cmd.media_id, self._send_checks, origin=origin, frame_id=frame_id
            )
        try:
            await self._send_checks(sender, cmd)
        except ClientError:
            # A retry of a send that was stored returns the stored message, even if the
            # sender is now rate limited or blocked (checked only on this rare path).
            stored = await self._store.find_by_muid(sender.uid, cmd.muid) if cmd.muid else None
            if stored is None:
                raise
            if origin is not None:
                encoded = protocol.encode_json(stored.to_json())
                origin.push(protocol.message_frame("message.sent", encoded, frame_id=frame_id))
            return stored
        gate = self._gate
        moderated = gate.covers(cmd.category, cmd.message_type)
        new = NewMessage(
            muid=cmd.muid or uuid.uuid4().hex,
            conversation_id=conversation_id(sender.uid, cmd.receiver, cmd.receiver_type),
            sender=sender.uid,
            receiver=cmd.receiver,
            receiver_type=cmd.receiver_type,
            category=cmd.category,
            type=cmd.message_type,
            text=cmd.text,
            data=cmd.data,
            metadata=cmd.metadata,
            tags=cmd.tags,
            parent_id=cmd.parent_id,
            attachment=None,
            status=Status.PENDING if moderated else Status.UNMODERATED,
            at=self._clock.now(),
        )
        # Under rules that need no model or provider, the message is judged here. The common
        # case, a clean approval, is stored approved in the same commit: one write, not two;
        # any match goes through the pipeline with this verdict, not judged again.
        verdict = await gate.judge_inline(new) if moderated else None
        judged = verdict is not None and verdict.clean
        if judged:
            new = dataclasses.replace(new, status=Status.APPROVED)
        message, created = await self._store.insert_message(new)
        body = message.to_json()
        final = ""
        if judged and created:
            # Acknowledged as held, like every moderated send; the verdict follows at once.
            final = protocol.encode_json(body)
            body["moderationStatus"] = Status.PENDING.value
        encoded = protocol.encode_json(body)  # once, for every frame below
        if origin is not None:
            origin.push(protocol.message_frame("message.sent", encoded, frame_id=frame_id))
        if not created:
            return message  # a retry: the first send already delivered or queued it
        hub = self._hub
        frame = protocol.message_frame("message", encoded)
        hub.send((sender.uid,), frame, exclude=origin)
        if judged:
            hub.send((sender.uid,), protocol.message_frame("message.moderated", final))
            await self._fanout.deliver(message, protocol.message_frame("message", final))
        elif message.status.deliverable:
            await self._fanout.deliver(message, frame)
        elif message.status is Status.PENDING:
            await gate.submit(message, verdict)
        return message

    # ----------------------------------------------------------------- rendering

    async def render(self, message: Message, uid: str | None) -> dict[str, Any]:
        """The message object for viewer ``uid``: a media message's ``attachment.url`` is
        signed for them (none for a staff caller without a user)."""
        if message.attachment is None or uid is None:
            return message.to_json()
        return (await self._fanout.bodies(message, (uid,)))[uid]

    async def render_all(
        self, messages: Sequence[Message], uid: str | None
    ) -> list[dict[str, Any]]:
        return [await self.render(m, uid) for m in messages]

    # ----------------------------------------------------------------- one message

    async def get_message(self, message_id: int) -> Message:
        message = await self._store.get_message(message_id)
        if message is None:
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        return message

    async def _members_for(self, message: Message) -> dict[str, Scope]:
        """The members of a group message's group (none for a 1:1 message)."""
        if message.receiver_type != "group":
            return {}
        return await self._groups.members(message.receiver)

    async def can_view(self, uid: str, message: Message) -> bool:
        if message.sender == uid:
            return True  # without reading the members
        if self._restrictions is not None and self._restrictions.hidden(message):
            return False  # a shadow-banned sender's message: theirs (and staff's) only
        return permissions.may_view_message(uid, message, await self._members_for(message))

    async def read_message(self, actor: Principal, message_id: int) -> Message:
        """A message as ``actor`` may read it (404 when they may not: nothing is revealed)."""
        message = await self.get_message(message_id)
        if not actor.is_staff and not await self.can_view(actor.uid or "", message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        return message

    async def edit_message(
        self,
        user: User,
        message_id: int,
        text: str,
        *,
        origin: Connection | None = None,
        frame_id: str | None = None,
    ) -> Message:
        message = await self.get_message(message_id)
        if message.sender != user.uid:
            raise Forbidden("only the sender may edit a message", {"messageId": message_id})
        if message.deleted_at:
            raise NotFound("message was deleted", {"messageId": message_id})
        if message.type != "text" and message.category == "message" and message.attachment is None:
            raise BadRequest("this message has no text to edit", {"messageId": message_id})
        if not text.strip():
            raise BadRequest("field 'text' is empty", {"field": "text"})
        await self._rate.take(user.uid)
        moderated = (
            self._gate.covers(message.category, message.type, caption=True)
            if message.attachment is not None  # a media message's new caption
            else self._gate.covers(message.category, message.type)
        )
        status = Status.PENDING if moderated else Status.UNMODERATED
        edited = await self._store.update_content(
            dataclasses.replace(message, text=text), status=status, at=self._clock.now()
        )
        if edited.attachment is not None:
            await self._media_sends.edited(message, edited, status, user, origin, frame_id)
            return edited
        encoded = protocol.encode_json(edited.to_json())
        frame = protocol.message_frame("message.edited", encoded)
        if origin is not None:
            origin.push(protocol.message_frame("message.edited", encoded, frame_id=frame_id))
        self._hub.send((user.uid,), frame, exclude=origin)
        if status.deliverable:
            # Unmoderated: receivers who had it get the edit, others (it was held) the message.
            kind = "message.edited" if message.shown else "message"
            await self._fanout.deliver(edited, protocol.message_frame(kind, encoded))
        elif status is Status.PENDING:
            await self._gate.submit(edited)
        return edited

    async def delete_message(
        self,
        actor: Principal,
        message_id: int,
        *,
        origin: Connection | None = None,
        frame_id: str | None = None,
    ) -> Message:
        message = await self.get_message(message_id)
        if message.deleted_at:
            raise NotFound("message was already deleted", {"messageId": message_id})
        members = {} if message.sender == actor.uid else await self._members_for(message)
        if not permissions.may_delete_message(actor, message, members):
            raise Forbidden("you may not delete this message", {"messageId": message_id})
        deleted = await self._store.mark_deleted(message, self._clock.now())
        encoded = protocol.encode_json(deleted.to_json())
        frame = protocol.message_frame("message.deleted", encoded)
        if origin is not None:
            origin.push(protocol.message_frame("message.deleted", encoded, frame_id=frame_id))
        self._hub.send((message.sender,), frame, exclude=origin)
        if message.shown:
            await self._fanout.to_audience(message, frame, exclude=origin)
        return deleted

    async def receipt(self, user: User, message_id: int, kind: str) -> None:
        """Record a delivered/read receipt and forward it to the message's sender."""
        message = await self.get_message(message_id)
        if message.sender == user.uid:
            raise BadRequest("receipts are for messages you received", {"messageId": message_id})
        if not await self.can_view(user.uid, message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        if await self._blocks.is_blocked_between(user.uid, message.sender):
            raise Blocked("a block stands between you and this user", {"uid": message.sender})
        at = self._clock.now()
        shadowed = self._restrictions is not None and self._restrictions.shadowed(
            user.uid, message.receiver, message.receiver_type
        )
        if await self._store.add_receipt(message_id, user.uid, kind, at) and not shadowed:
            body = {
                "messageId": message_id,
                "conversationId": message.conversation_id,
                "receiptType": kind,
                "uid": user.uid,
                "at": at,
            }
            self._hub.send((message.sender,), protocol.encode("receipt", body))

    async def report_message(
        self, user: User, message_id: int, reason: str, remarks: str, category: object = None
    ) -> dict[str, Any]:
        """A user report (``services/reports.py``); the acknowledgement body."""
        return await self.reports.report(user, message_id, reason, remarks, category)

    async def typing(self, user: User, receiver: str, receiver_type: str, state: str) -> None:
        await self._check_can_send(user, receiver, receiver_type)
        if not await self._typing.allow(user.uid, f"{receiver_type}:{receiver}", state):
            return
        if self._restrictions is not None and self._restrictions.shadowed(
            user.uid, receiver, receiver_type
        ):
            return  # a shadow-banned user's typing reaches no one
        body = {
            "sender": user.uid,
            "receiver": receiver,
            "receiverType": receiver_type,
            "state": state,
        }
        receivers = await self._fanout.receivers(user.uid, receiver, receiver_type)
        self._hub.send(receivers, protocol.encode("typing", body), droppable=True)

    # ----------------------------------------------------------------- history

    async def history(
        self,
        actor: Principal,
        cid: str,
        *,
        before: int | None,
        limit: int,
        kind: str | None = None,
    ) -> list[Message]:
        """A page of a conversation, oldest first, as ``actor`` may see it.

        ``cid`` is resolved against the caller (server/conversations.py): a user reads only a
        1:1 conversation they are one of, or a group they are a member of; ``kind``
        (``user``/``group``) picks a reading when one id names both for the caller.
        """
        conversation = await self._resolve(actor, cid, kind)
        viewer = None if actor.is_staff else actor.uid
        if conversation.kind == "group" and viewer is not None:
            members = await self._groups.members(conversation.a)
            if viewer not in members:
                raise NotAMember("you are not a member of this group", {"guid": conversation.a})
        page = await self._store.history(
            conversation.key, before=before, limit=limit, viewer=viewer
        )
        if self._restrictions is not None:  # a shadow-banned sender's messages: theirs only
            page = self._restrictions.visible_to(page, viewer)
        return page

    async def _resolve(self, actor: Principal, cid: str, kind: str | None) -> Conversation:
        """The conversation ``cid`` names for ``actor`` (403 when it names none of theirs)."""
        found = [r for r in conversations.readings(cid) if kind is None or r.kind == kind]
        uid = actor.uid
        if uid is not None:
            mine = [r for r in found if r.has_participant(uid)]
            if mine:
                return mine[0]
        for reading in found:
            if reading.kind == "group":
                if await self._groups.group(reading.a) is None:
                    continue
                if actor.is_staff or uid in await self._groups.members(reading.a):
                    return reading
                raise NotAMember("you are not a member of this group", {"guid": reading.a})
            if actor.is_staff:
                return reading
        if not found:
            raise BadRequest("malformed conversation id", {"field": "conversationId"})
        raise Forbidden("not your conversation", {"conversationId": cid})
