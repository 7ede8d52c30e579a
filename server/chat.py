"""The service layer: the one module that joins storage, moderation and the hub.

Sessions (WebSocket) and routes (REST) call these methods; they never touch storage. Every
method checks who may do what, writes through the store, then fans the resulting frames out
through the hub. A frame is encoded once per audience.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from moderation.types import Verdict
from server import conversations, permissions, protocol
from server.auth import Principal, Role, TokenAuthority, TokenClaims
from server.clock import SYSTEM_CLOCK, Clock
from server.conversations import Conversation, conversation_id
from server.errors import (
    AuthInvalid,
    BadRequest,
    Banned,
    Blocked,
    ClientError,
    Conflict,
    Forbidden,
    NotAMember,
    NotFound,
)
from server.hub import Connection, Hub
from server.models import Group, Message, Moderation, Scope, Status, User
from server.protocol import SendMessage
from server.ratelimit import RateLimiter, TypingThrottle
from server.storage.ports import ChatStore, ModerationRepository, TxOp
from server.storage.types import Audit, AuditEntry, NewMessage

log = logging.getLogger(__name__)


class ModerationGate(Protocol):
    """The seam to moderation: decides pending vs unmoderated and takes pending messages."""

    def covers(self, category: str, message_type: str) -> bool:
        """Whether an enabled rule covers this type (then the message starts ``pending``)."""
        ...

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        """Queue a pending message to have ``verdict`` applied, or to be judged first when
        none is given; must not drop it."""
        ...

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        """The verdict on ``new`` before it is stored, when every rule on its type runs
        inline (no model, no provider); None when it must be judged later."""
        ...


class NoModeration:
    """A gate that moderates nothing: every message is ``unmoderated``."""

    def covers(self, category: str, message_type: str) -> bool:
        return False

    async def submit(self, message: Message, verdict: Verdict | None = None) -> None:
        raise RuntimeError("NoModeration got a pending message")

    async def judge_inline(self, new: NewMessage) -> Verdict | None:
        return None


class ChatService:
    """Users, groups, blocks and messages, with their permissions and fan-out."""

    def __init__(
        self,
        store: ChatStore,
        hub: Hub,
        tokens: TokenAuthority,
        *,
        gate: ModerationGate,
        limits: protocol.Limits,
        rate_limiter: RateLimiter,
        reports: ModerationRepository,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.reports = reports
        self.hub = hub
        self.tokens = tokens
        self.gate = gate
        self.limits = limits
        self.rate = rate_limiter
        self.clock = clock
        self.typing_throttle = TypingThrottle(clock=clock.monotonic)
        self._users: dict[str, User] = {}
        self._members: dict[str, dict[str, Scope]] = {}
        self._groups: dict[str, Group] = {}  # groups never change once created
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._blocks: dict[str, tuple[set[str], set[str]]] = {}
        self.counters: dict[str, int] = {"sent": 0, "delivered_frames": 0}
        #: Moderation events for the outgoing webhooks (``user.banned``); set by the app.
        self.on_event: Callable[[str, dict[str, Any]], None] = lambda event, data: None

    # ================================================================ identity

    async def user(self, uid: str) -> User | None:
        """A live (not deleted) user, cached."""
        user = self._users.get(uid)
        if user is None:
            user = await self.store.get_user(uid)
            if user is None or user.deleted_at:
                return None
            self._users[uid] = user
        return user

    async def require_user(self, uid: str) -> User:
        user = await self.user(uid)
        if user is None:
            raise NotFound(f"user {uid!r} not found", {"uid": uid})
        return user

    async def authenticate(self, token: str) -> User:
        """The user behind a token. Raises AuthInvalid, or Forbidden for a deleted or banned user."""
        claims = self.tokens.verify(token)
        user = await self.user(claims.uid)
        if user is None:
            stored = await self.store.get_user(claims.uid)
            if stored is not None:
                raise Forbidden("user is deleted")
            raise AuthInvalid("unknown user")
        if not _token_fits_account(claims, user):
            raise AuthInvalid("token was issued to an earlier account with this uid")
        if user.banned:
            raise Forbidden("user is banned")
        return user

    async def principal_for(self, user: User) -> Principal:
        return Principal(uid=user.uid, role=Role(user.role))

    # ================================================================ users

    async def create_user(
        self,
        actor: Principal,
        *,
        uid: str,
        name: str,
        role: str,
        tags: tuple[str, ...],
        metadata: dict[str, Any],
    ) -> User:
        if await self.store.get_user(uid) is not None:
            raise Conflict(f"user {uid!r} already exists", {"uid": uid})
        now = self.clock.now()
        user = User(uid, name, role, tags, metadata, now, now, account=uuid.uuid4().hex)
        await self.store.create_user(user, Audit(_actor(actor), "user.create", uid, {"role": role}))
        self._users[uid] = user
        return user

    async def update_user(self, actor: Principal, uid: str, changes: dict[str, Any]) -> User:
        user = await self.require_user(uid)
        updated = dataclasses.replace(user, **changes, updated_at=self.clock.now())
        details = {k: v for k, v in changes.items() if k in ("role", "banned")}
        await self.store.update_user(updated, Audit(_actor(actor), "user.update", uid, details))
        self._users[uid] = updated
        if updated.banned and not user.banned:
            self._close_user(uid, protocol.CLOSE_FORBIDDEN, "user banned")
            self.on_event("user.banned", {"uid": uid, "guid": None, "by": _actor(actor)})
        return updated

    async def _stored_user(self, uid: str) -> User:
        """A user, live or soft-deleted (erasure and export reach deleted accounts too)."""
        user = await self.store.get_user(uid)
        if user is None:
            raise NotFound(f"user {uid!r} not found", {"uid": uid})
        return user

    async def delete_user(self, actor: Principal, uid: str, *, erase: bool) -> None:
        """Soft-delete (the uid stays taken), or erase: the account, its messages, receipts,
        blocks and memberships are gone, and the uid may be created again. A soft-deleted
        user can still be erased."""
        user = await self._stored_user(uid)
        if user.deleted_at and not erase:
            raise NotFound(f"user {uid!r} was already deleted", {"uid": uid})
        groups = await self.store.groups_of(uid)
        await self.store.delete_user(
            uid,
            self.clock.now(),
            erase=erase,
            audit=Audit(_actor(actor), "user.erase" if erase else "user.delete", uid, {}),
        )
        self._users.pop(uid, None)
        self._blocks.clear()
        for guid in groups:
            self._members.pop(guid, None)
        self._close_user(uid, protocol.CLOSE_FORBIDDEN, "user deleted")

    async def issue_token(self, uid: str, ttl: int | None) -> tuple[str, int]:
        user = await self.require_user(uid)
        return self.tokens.issue(uid, account=user.account, ttl=ttl)

    async def export_user(self, uid: str) -> dict[str, Any]:
        """Everything stored about a user, decrypted (GDPR access); soft-deleted users too."""
        user = await self._stored_user(uid)
        blocked, _ = await self._blocks_of(uid)
        groups = []
        for guid in await self.store.groups_of(uid):
            members = await self._group_members(guid)
            groups.append({"guid": guid, "scope": members[uid].label if uid in members else None})
        messages = await self.store.messages_of_sender(uid)
        return {
            "user": {**user.to_json(), "deletedAt": user.deleted_at},
            "messages": [m.to_json() for m in messages],
            "receipts": await self.store.receipts_of(uid),
            "blockedUsers": sorted(blocked),
            "groups": groups,
            "exportedAt": self.clock.now(),
        }

    def _close_user(self, uid: str, code: int, reason: str) -> None:
        for conn in self.hub.connections(uid):
            conn.close(code, reason)

    # ================================================================ blocks

    async def _blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        cached = self._blocks.get(uid)
        if cached is None:
            cached = await self.store.blocks_of(uid)
            self._blocks[uid] = cached
        return cached

    async def is_blocked_between(self, a: str, b: str) -> bool:
        blocked, blocked_by = await self._blocks_of(a)
        return b in blocked or b in blocked_by

    async def blocked_users(self, uid: str) -> list[str]:
        blocked, _ = await self._blocks_of(uid)
        return sorted(blocked)

    async def block(self, uid: str, uids: list[str]) -> list[str]:
        for other in uids:
            if other == uid:
                raise BadRequest("cannot block yourself", {"uid": other})
            await self.require_user(other)
        await self.store.add_blocks(uid, uids, self.clock.now())
        self._blocks.pop(uid, None)
        for other in uids:
            self._blocks.pop(other, None)
        return await self.blocked_users(uid)

    async def unblock(self, uid: str, other: str) -> list[str]:
        await self.store.remove_block(uid, other)
        self._blocks.pop(uid, None)
        self._blocks.pop(other, None)
        return await self.blocked_users(uid)

    # ================================================================ groups

    async def group_members(self, guid: str) -> dict[str, Scope]:
        """A group's members and their scopes (cached; empty for an unknown group)."""
        return await self._group_members(guid)

    async def _group_members(self, guid: str) -> dict[str, Scope]:
        members = self._members.get(guid)
        if members is None:
            members = await self.store.members(guid)
            self._members[guid] = members
        return members

    async def require_group(self, guid: str) -> Group:
        group = self._groups.get(guid)
        if group is None:
            group = await self.store.get_group(guid)
            if group is None:
                raise NotFound(f"group {guid!r} not found", {"guid": guid})
            self._groups[guid] = group
        return group

    async def create_group(
        self,
        actor: Principal,
        *,
        guid: str,
        name: str,
        type_: str,
        tags: tuple[str, ...],
        owner: str | None,
    ) -> Group:
        # A user token makes the caller owner; the API key names one, or none: the group then
        # has no user owner, and the API key and admins act as its owner (PROTOCOL.md).
        owner_uid = actor.uid if actor.uid is not None else owner
        if owner_uid is not None:
            await self.require_user(owner_uid)
        if await self.store.get_group(guid) is not None:
            raise Conflict(f"group {guid!r} already exists", {"guid": guid})
        now = self.clock.now()
        group = Group(guid, name, type_, tags, owner_uid, now, now)
        await self.store.create_group(
            group, Audit(_actor(actor), "group.create", guid, {"owner": owner_uid})
        )
        self._members.pop(guid, None)
        return group

    async def get_group(self, actor: Principal, guid: str) -> tuple[Group, dict[str, Scope]]:
        group = await self.require_group(guid)
        members = await self._group_members(guid)
        if not permissions.may_read_group(actor, group.type, members):
            raise NotAMember("not a member of this private group", {"guid": guid})
        return group, members

    async def add_member(self, actor: Principal, guid: str, uid: str, scope: Scope) -> None:
        async with self._group_lock(guid):
            group = await self.require_group(guid)
            await self.require_user(uid)
            members = await self._group_members(guid)
            if uid in members:
                raise Conflict(f"{uid!r} is already a member", {"uid": uid})
            banned = await self.store.is_banned(guid, uid)
            permissions.check_add_member(
                actor, members, uid, scope, guid=guid, group_type=group.type, banned=banned
            )
            members = await self._set_member(actor, guid, uid, scope, "group.join", members)
            if banned:  # an admin adding a banned user lifts the ban
                await self.store.unban(
                    guid, uid, Audit(_actor(actor), "group.unban", guid, {"uid": uid})
                )
            self._group_event(guid, uid, "joined", actor, members, scope=scope)

    async def set_scope(self, actor: Principal, guid: str, uid: str, scope: Scope) -> None:
        async with self._group_lock(guid):
            await self.require_group(guid)
            members = await self._group_members(guid)
            if uid not in members:
                raise NotFound(f"{uid!r} is not a member", {"uid": uid})
            permissions.check_set_scope(actor, members, uid, scope, guid=guid)
            members = await self._set_member(actor, guid, uid, scope, "group.scope", members)
            self._group_event(guid, uid, "scope_changed", actor, members, scope=scope)

    async def _set_member(
        self,
        actor: Principal,
        guid: str,
        uid: str,
        scope: Scope,
        action: str,
        members: dict[str, Scope],
    ) -> dict[str, Scope]:
        """Store ``uid``'s membership at ``scope`` (audited as ``action``); the new member map,
        which replaces the cached one (never mutated: readers may hold the old one)."""
        await self.store.set_member(
            guid,
            uid,
            scope,
            self.clock.now(),
            Audit(_actor(actor), action, guid, {"uid": uid, "scope": scope.label}),
        )
        members = {**members, uid: scope}
        self._members[guid] = members
        return members

    async def remove_member(self, actor: Principal, guid: str, uid: str) -> None:
        """A member leaving (actor is the member) or being kicked (may rejoin a public group)."""
        async with self._group_lock(guid):
            await self.require_group(guid)
            members = await self._group_members(guid)
            if uid not in members:
                raise NotFound(f"{uid!r} is not a member", {"uid": uid})
            leaving = permissions.is_self_join(actor, uid)
            if leaving:
                permissions.check_leave(members, uid, guid=guid)
            else:
                permissions.check_power_over(actor, members, uid)
            action = "left" if leaving else "kicked"
            await self.store.remove_member(
                guid, uid, Audit(_actor(actor), f"group.{action}", guid, {"uid": uid})
            )
            old = members
            members = {k: v for k, v in old.items() if k != uid}
            self._members[guid] = members
            self._group_event(guid, uid, action, actor, old)

    def _group_lock(self, guid: str) -> asyncio.Lock:
        """Serialises membership changes of one group: each reads the cached members, awaits
        the store, then writes the cache back, so concurrent changes would lose each other."""
        lock = self._group_locks.get(guid)
        if lock is None:
            lock = self._group_locks[guid] = asyncio.Lock()
        return lock

    async def ban(self, actor: Principal, guid: str, uid: str, reason: str) -> None:
        async with self._group_lock(guid):
            await self.require_group(guid)
            await self.require_user(uid)
            members = await self._group_members(guid)
            permissions.check_power_over(actor, members, uid)
            await self.store.ban(
                guid,
                uid,
                reason,
                _actor(actor),
                self.clock.now(),
                Audit(_actor(actor), "group.ban", guid, {"uid": uid, "reason": reason}),
            )
            old = members
            self._members[guid] = {k: v for k, v in old.items() if k != uid}
            self._group_event(guid, uid, "banned", actor, old, reason=reason)
        self.on_event(
            "user.banned", {"uid": uid, "guid": guid, "reason": reason, "by": _actor(actor)}
        )

    async def unban(self, actor: Principal, guid: str, uid: str) -> None:
        async with self._group_lock(guid):
            await self.require_group(guid)
            members = await self._group_members(guid)
            permissions.check_unban(actor, members, guid=guid)
            if not await self.store.is_banned(guid, uid):
                raise NotFound(f"{uid!r} is not banned", {"uid": uid})
            await self.store.unban(
                guid, uid, Audit(_actor(actor), "group.unban", guid, {"uid": uid})
            )
            self._group_event(guid, uid, "unbanned", actor, members)

    def _group_event(
        self,
        guid: str,
        uid: str,
        action: str,
        actor: Principal,
        audience: dict[str, Scope],
        *,
        scope: Scope | None = None,
        reason: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"guid": guid, "uid": uid, "action": action, "by": _actor(actor)}
        if scope is not None:
            body["scope"] = scope.label
        if reason:
            body["reason"] = reason
        text = protocol.encode("group.member", body)
        self.hub.send({*audience, uid}, text)

    # ================================================================ messages

    async def _receivers(self, sender: str, receiver: str, receiver_type: str) -> list[str]:
        """Who gets a message from ``sender`` now, with blocks removed (never the sender)."""
        if receiver_type == "user":
            return [] if receiver == sender else [receiver]
        members = await self._group_members(receiver)
        blocked, blocked_by = await self._blocks_of(sender)
        return [u for u in members if u != sender and u not in blocked and u not in blocked_by]

    async def _check_can_send(self, sender: User, receiver: str, receiver_type: str) -> None:
        if receiver_type == "user":
            if await self.user(receiver) is None:
                raise NotFound(f"user {receiver!r} not found", {"receiver": receiver})
            if await self.is_blocked_between(sender.uid, receiver):
                raise Blocked("a block stands between you and this user", {"receiver": receiver})
            return
        await self.require_group(receiver)
        members = await self._group_members(receiver)
        if sender.uid in members:
            return  # a ban removes the membership, so a member is not banned
        if await self.store.is_banned(receiver, sender.uid):
            raise Banned("you are banned from this group", {"guid": receiver})
        raise NotAMember("you are not a member of this group", {"guid": receiver})

    async def post_message(
        self,
        sender: User,
        cmd: SendMessage,
        *,
        origin: Connection | None = None,
        frame_id: str | None = None,
    ) -> Message:
        """Check, store durably (idempotent on muid), acknowledge, then deliver or hold."""
        try:
            self.rate.check(sender.uid)
            await self._check_can_send(sender, cmd.receiver, cmd.receiver_type)
        except ClientError:
            # A retry of a send that was stored returns the stored message, even if the
            # sender is now rate limited or blocked (checked only on this rare path).
            stored = await self.store.find_by_muid(sender.uid, cmd.muid) if cmd.muid else None
            if stored is None:
                raise
            if origin is not None:
                encoded = protocol.encode_json(stored.to_json())
                origin.push(protocol.message_frame("message.sent", encoded, frame_id=frame_id))
            return stored
        if cmd.media_id is not None:
            raise NotFound("media not found", {"mediaId": cmd.media_id})
        moderated = self.gate.covers(cmd.category, cmd.message_type)
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
            at=self.clock.now(),
        )
        # Under rules that need no model or provider, the message is judged here. The common
        # case, a clean approval, is stored approved in the same commit: one write, not two;
        # any match goes through the pipeline with this verdict, not judged again.
        verdict = await self.gate.judge_inline(new) if moderated else None
        judged = verdict is not None and verdict.clean
        if judged:
            new = dataclasses.replace(new, status=Status.APPROVED)
        message, created = await self.store.insert_message(new)
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
        self.counters["sent"] += 1
        frame = protocol.message_frame("message", encoded)
        self.hub.send((sender.uid,), frame, exclude=origin)
        if judged:
            self.hub.send((sender.uid,), protocol.message_frame("message.moderated", final))
            await self._deliver(message, protocol.message_frame("message", final))
        elif message.status.deliverable:
            await self._deliver(message, frame)
        elif message.status is Status.PENDING:
            await self.gate.submit(message, verdict)
        return message

    async def _deliver(self, message: Message, frame: str) -> None:
        receivers = await self._receivers(message.sender, message.receiver, message.receiver_type)
        self.counters["delivered_frames"] += self.hub.send(receivers, frame)

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
        updated = await self.store.set_status(
            message, status, moderation, self.clock.now(), audit, also
        )
        if updated is None:
            return None
        encoded = protocol.encode_json(updated.to_json())
        extra = ""
        if moderation is not None and status is Status.DISAPPROVED:
            extra = ',"moderation":' + protocol.encode_json(moderation.to_json())
        self.hub.send(
            (updated.sender,), protocol.message_frame("message.moderated", encoded, extra=extra)
        )
        if status.deliverable and not message.status.deliverable:
            # Receivers who had an earlier version get the edit; others the message itself.
            kind = "message.edited" if message.shown else "message"
            await self._deliver(updated, protocol.message_frame(kind, encoded))
        elif not status.deliverable and message.shown:
            # Receivers hold a version they may no longer see (an edit was disapproved, or a
            # moderator overturned an approval): for them the message is gone.
            await self._withdraw(updated)
        return updated

    async def _withdraw(self, message: Message) -> None:
        """``message.deleted`` (content erased) to everyone who may hold a copy."""
        gone = dataclasses.replace(
            message,
            text=None,
            data=None,
            metadata={},
            attachment=None,
            deleted_at=message.deleted_at or message.updated_at,
        )
        frame = protocol.message_frame("message.deleted", protocol.encode_json(gone.to_json()))
        self.hub.send(await self._audience(message), frame)

    async def _audience(self, message: Message) -> list[str]:
        """Everyone but the sender who may hold a copy: the peer, or the group's members.

        Unlike delivery, blocks do not narrow it: a withdrawal or deletion tells nothing new.
        """
        if message.receiver_type == "user":
            return [message.receiver]
        members = await self._group_members(message.receiver)
        return [uid for uid in members if uid != message.sender]

    async def get_message(self, message_id: int) -> Message:
        message = await self.store.get_message(message_id)
        if message is None:
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        return message

    async def _members_for(self, message: Message) -> dict[str, Scope]:
        """The members of a group message's group (none for a 1:1 message)."""
        if message.receiver_type != "group":
            return {}
        return await self._group_members(message.receiver)

    async def can_view(self, uid: str, message: Message) -> bool:
        if message.sender == uid:
            return True  # without reading the members
        return permissions.may_view_message(uid, message, await self._members_for(message))

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
        self.rate.check(user.uid)
        moderated = self.gate.covers(message.category, message.type)
        status = Status.PENDING if moderated else Status.UNMODERATED
        edited = await self.store.update_content(
            dataclasses.replace(message, text=text), status=status, at=self.clock.now()
        )
        encoded = protocol.encode_json(edited.to_json())
        frame = protocol.message_frame("message.edited", encoded)
        if origin is not None:
            origin.push(protocol.message_frame("message.edited", encoded, frame_id=frame_id))
        self.hub.send((user.uid,), frame, exclude=origin)
        if status.deliverable:
            # Unmoderated: receivers who had it get the edit, others (it was held) the message.
            kind = "message.edited" if message.shown else "message"
            await self._deliver(edited, protocol.message_frame(kind, encoded))
        elif status is Status.PENDING:
            await self.gate.submit(edited)
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
        deleted = await self.store.mark_deleted(message, self.clock.now())
        encoded = protocol.encode_json(deleted.to_json())
        frame = protocol.message_frame("message.deleted", encoded)
        if origin is not None:
            origin.push(protocol.message_frame("message.deleted", encoded, frame_id=frame_id))
        self.hub.send((message.sender,), frame, exclude=origin)
        if message.shown:
            self.hub.send(await self._audience(message), frame, exclude=origin)
        return deleted

    async def receipt(self, user: User, message_id: int, kind: str) -> None:
        """Record a delivered/read receipt and forward it to the message's sender."""
        message = await self.get_message(message_id)
        if message.sender == user.uid:
            raise BadRequest("receipts are for messages you received", {"messageId": message_id})
        if not await self.can_view(user.uid, message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        if await self.is_blocked_between(user.uid, message.sender):
            raise Blocked("a block stands between you and this user", {"uid": message.sender})
        at = self.clock.now()
        if await self.store.add_receipt(message_id, user.uid, kind, at):
            body = {
                "messageId": message_id,
                "conversationId": message.conversation_id,
                "receiptType": kind,
                "uid": user.uid,
                "at": at,
            }
            self.hub.send((message.sender,), protocol.encode("receipt", body))

    async def flag_message(
        self, user: User, message_id: int, reason: str, remarks: str
    ) -> dict[str, Any]:
        """A user report: queued for moderators as ``reported``; once per user and message."""
        message = await self.get_message(message_id)
        if message.sender == user.uid:
            raise BadRequest("you cannot report your own message", {"messageId": message_id})
        if not await self.can_view(user.uid, message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        if not reason.strip():
            raise BadRequest("field 'reason' is empty", {"field": "reason"})
        report, created = await self.reports.add_report(
            message_id, user.uid, reason, remarks, self.clock.now()
        )
        if not created:
            raise Conflict("you already reported this message", {"messageId": message_id})
        return {"messageId": message_id, "report": report}

    async def typing(
        self,
        user: User,
        receiver: str,
        receiver_type: str,
        state: str,
        *,
        origin: Connection | None,
    ) -> None:
        await self._check_can_send(user, receiver, receiver_type)
        if not self.typing_throttle.admit(user.uid, f"{receiver_type}:{receiver}", state):
            return
        body = {
            "sender": user.uid,
            "receiver": receiver,
            "receiverType": receiver_type,
            "state": state,
        }
        receivers = await self._receivers(user.uid, receiver, receiver_type)
        self.hub.send(receivers, protocol.encode("typing", body), droppable=True)

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
            members = await self._group_members(conversation.a)
            if viewer not in members:
                raise NotAMember("you are not a member of this group", {"guid": conversation.a})
        return await self.store.history(conversation.key, before=before, limit=limit, viewer=viewer)

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
                if await self.store.get_group(reading.a) is None:
                    continue
                if actor.is_staff or uid in await self._group_members(reading.a):
                    return reading
                raise NotAMember("you are not a member of this group", {"guid": reading.a})
            if actor.is_staff:
                return reading
        if not found:
            raise BadRequest("malformed conversation id", {"field": "conversationId"})
        raise Forbidden("not your conversation", {"conversationId": cid})

    async def audit(self, since: int, limit: int = 1000) -> list[AuditEntry]:
        return await self.store.audit_since(since, limit)


def _token_fits_account(claims: TokenClaims, user: User) -> bool:
    """Whether a token belongs to this incarnation of its uid: a token minted here names the
    account; one minted by the app's backend must not predate the account."""
    if claims.account is not None and user.account:
        return hmac.compare_digest(claims.account, user.account)
    return claims.issued_at >= user.created_at


def _actor(actor: Principal) -> str:
    if actor.label:
        return actor.label
    return "api-key" if actor.is_api_key else (actor.uid or "?")
