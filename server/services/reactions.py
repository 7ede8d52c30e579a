"""Reactions on messages and replies in threads (issue 16 item 8).

- ``ParentCheck``: a send that names ``parentId`` replies in the same conversation to a
  message its sender can see, delivered and not deleted.
- ``Reactions``: add and remove an emoji (``message.reaction`` to everyone who has the
  message), who reacted with what, thread pages, and the counts (``reactions``,
  ``myReactions``, ``replyCount``) added to the message objects of history and thread pages.

Shadow bans (``services/restrictions.py``) reach here too: a shadow-banned user's reactions
and replies count for that user only, and their reaction frames go to no one else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server import conversations, protocol
from server.auth import Principal
from server.clock import Clock
from server.errors import BadRequest, Blocked, Conflict, NotFound
from server.hub import Connection, Hub
from server.models import Message, User
from server.protocol import SendMessage
from server.ratelimit import RateLimiter
from server.services.blocks import BlockService
from server.services.fanout import Fanout
from server.services.messaging import MessagingService
from server.services.restrictions import Restrictions
from server.storage.ports import MessageRepository, ReactionRepository

#: Distinct emoji one user may put on one message.
MAX_REACTIONS_PER_USER = 20


def same_conversation(parent: Message, sender: str, receiver: str, receiver_type: str) -> bool:
    """Whether a send from ``sender`` to ``receiver`` lands in ``parent``'s conversation."""
    if receiver_type != parent.receiver_type:
        return False
    if receiver_type == "group":
        return parent.receiver == receiver
    return {parent.sender, parent.receiver} == {sender, receiver}


class ParentCheck:
    """Checks ``parentId`` on a send (both paths: text and media), after the other checks."""

    def __init__(self, store: MessageRepository, restrictions: Restrictions | None) -> None:
        self._store = store
        self._restrictions = restrictions

    async def check(self, sender: str, cmd: SendMessage) -> None:
        """``ERR_NOT_FOUND`` for a parent the sender cannot see in this conversation (or one
        deleted); ``ERR_CONFLICT`` for the sender's own message that is not delivered."""
        if cmd.parent_id is None:
            return
        parent = await self._store.get_message(cmd.parent_id)
        own = parent is not None and parent.sender == sender
        if (
            parent is None
            or parent.deleted_at
            or not same_conversation(parent, sender, cmd.receiver, cmd.receiver_type)
            or not (own or parent.status.deliverable)
            or (not own and self._restrictions is not None and self._restrictions.hidden(parent))
        ):
            raise NotFound(
                "parent message not found in this conversation", {"parentId": cmd.parent_id}
            )
        if not parent.status.deliverable:
            raise Conflict(
                "the parent message is not delivered (pending or blocked)",
                {"parentId": cmd.parent_id},
            )


class Reactions:
    """Reactions and thread pages; the counts on message objects."""

    def __init__(
        self,
        store: ReactionRepository,
        messaging: MessagingService,
        fanout: Fanout,
        hub: Hub,
        blocks: BlockService,
        *,
        rate_limiter: RateLimiter,
        clock: Clock,
        restrictions: Restrictions | None = None,
    ) -> None:
        self._store = store
        self._messaging = messaging
        self._fanout = fanout
        self._hub = hub
        self._blocks = blocks
        self._rate = rate_limiter
        self._clock = clock
        self._restrictions = restrictions

    def _shadowed(self, uid: str, message: Message | dict[str, Any]) -> bool:
        if self._restrictions is None:
            return False
        if isinstance(message, Message):
            return self._restrictions.shadowed(uid, message.receiver, message.receiver_type)
        return self._restrictions.shadowed(uid, message["receiver"], message["receiverType"])

    # ----------------------------------------------------------------- reacting

    async def _reactable(self, user: User, message_id: int) -> Message:
        message = await self._messaging.get_message(message_id)
        if message.deleted_at or not await self._messaging.can_view(user.uid, message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        if not message.status.deliverable:
            raise Conflict(
                "reactions are for delivered messages (this one is pending or blocked)",
                {"messageId": message_id},
            )
        if message.receiver_type == "user":
            other = message.receiver if message.sender == user.uid else message.sender
            if other != user.uid and await self._blocks.is_blocked_between(user.uid, other):
                raise Blocked("a block stands between you and this user", {"uid": other})
        return message

    async def react(
        self,
        user: User,
        message_id: int,
        emoji: str,
        *,
        add: bool,
        origin: Connection | None = None,
        frame_id: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """Add or remove ``user``'s ``emoji``: the ``message.reaction`` body and whether it
        changed anything. A change goes to everyone who has the message (blocks between
        them and the reactor aside); the origin connection gets the body with its frame id."""
        message = await self._reactable(user, message_id)
        await self._rate.take(user.uid)
        if add:
            rows = await self._store.reactions_of([message_id])
            mine = {e for _, uid, e in rows if uid == user.uid}
            if emoji not in mine and len(mine) >= MAX_REACTIONS_PER_USER:
                raise BadRequest(
                    f"at most {MAX_REACTIONS_PER_USER} different reactions per user on a message",
                    {"messageId": message_id, "limit": MAX_REACTIONS_PER_USER},
                )
            changed = await self._store.add_reaction(message_id, user.uid, emoji, self._clock.now())
        else:
            changed = await self._store.remove_reaction(message_id, user.uid, emoji)
        rows = await self._store.reactions_of([message_id])
        body = {
            "messageId": message_id,
            "conversationId": message.conversation_id,
            "uid": user.uid,
            "emoji": emoji,
            "action": "added" if add else "removed",
            "reactions": self._counts(message, rows, user.uid),
        }
        if origin is not None:
            origin.push(protocol.encode("message.reaction", body, frame_id=frame_id))
        if changed:
            await self._broadcast(user, message, body, rows, origin)
        return body, changed

    async def _broadcast(
        self,
        user: User,
        message: Message,
        body: dict[str, Any],
        rows: list[tuple[int, str, str]],
        origin: Connection | None,
    ) -> None:
        if self._shadowed(user.uid, message):
            self._hub.send((user.uid,), protocol.encode("message.reaction", body), exclude=origin)
            return
        blocked, blocked_by = await self._blocks.blocks_of(user.uid)
        audience = [message.sender, *await self._fanout.audience(message)]
        others = [
            u
            for u in dict.fromkeys(audience)
            if u != user.uid and u not in blocked and u not in blocked_by
        ]
        public = {**body, "reactions": self._counts(message, rows, None)}
        self._hub.send(others, protocol.encode("message.reaction", public))
        self._hub.send((user.uid,), protocol.encode("message.reaction", body), exclude=origin)

    def _counts(
        self, message: Message, rows: Sequence[tuple[int, str, str]], viewer: str | None
    ) -> dict[str, int]:
        """Per emoji, how many users reacted, as ``viewer`` may know it (shadow bans)."""
        counts: dict[str, int] = {}
        for _, uid, emoji in rows:
            if uid == viewer or not self._shadowed(uid, message):
                counts[emoji] = counts.get(emoji, 0) + 1
        return counts

    async def who_reacted(self, actor: Principal, message_id: int) -> dict[str, Any]:
        """``{messageId, reactions: [{emoji, count, uids}]}``, in the order first used."""
        message = await self._messaging.read_message(actor, message_id)
        grouped: dict[str, list[str]] = {}
        if not message.deleted_at:
            for _, uid, emoji in await self._store.reactions_of([message_id]):
                if uid == actor.uid or actor.is_staff or not self._shadowed(uid, message):
                    grouped.setdefault(emoji, []).append(uid)
        return {
            "messageId": message_id,
            "reactions": [
                {"emoji": e, "count": len(uids), "uids": sorted(uids)}
                for e, uids in grouped.items()
            ],
        }

    # ----------------------------------------------------------------- counts on messages

    async def annotate(self, bodies: list[dict[str, Any]], viewer: str | None) -> None:
        """Add ``reactions`` (emoji -> count), ``replyCount`` and, for a user, ``myReactions``
        to message objects, in place: two reads for the whole page."""
        if not bodies:
            return
        by_id = {int(b["id"]): b for b in bodies}
        for b in bodies:
            b["reactions"] = {}
            b["replyCount"] = 0
            if viewer is not None:
                b["myReactions"] = []
        staff = viewer is None
        for mid, uid, emoji in await self._store.reactions_of(list(by_id)):
            b = by_id[mid]
            if b.get("deletedAt"):
                continue
            if uid == viewer or staff or not self._shadowed(uid, b):
                b["reactions"][emoji] = b["reactions"].get(emoji, 0) + 1
            if uid == viewer:
                b["myReactions"].append(emoji)
        for parent_id, sender, n in await self._store.reply_counts(list(by_id)):
            b = by_id[parent_id]
            if sender == viewer or staff or not self._shadowed(sender, b):
                b["replyCount"] += n

    # ----------------------------------------------------------------- threads

    async def thread(
        self, actor: Principal, message_id: int, *, before: int | None, limit: int
    ) -> dict[str, Any]:
        """The parent and a page of its replies, oldest first: ``{parent, messages,
        hasMore}``, as ``actor`` may see them (``before``: replies with a smaller id)."""
        parent = await self._messaging.read_message(actor, message_id)
        viewer = None if actor.is_staff else actor.uid
        key = conversations.conversation_key(parent.sender, parent.receiver, parent.receiver_type)
        page = await self._store.thread(
            key, parent.id, before=before, limit=limit + 1, viewer=viewer
        )
        if self._restrictions is not None:
            page = self._restrictions.visible_to(page, viewer)
        replies = page[1:] if len(page) > limit else page
        bodies = await self._messaging.render_all([parent, *replies], actor.uid)
        await self.annotate(bodies, viewer)
        return {"parent": bodies[0], "messages": bodies[1:], "hasMore": len(page) > limit}
