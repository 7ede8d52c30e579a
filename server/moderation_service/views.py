"""What the engine sees of a message: its view, the conversation context and the sender's
recent messages, loaded as far as the enabled rules read them; and the messages in flight,
for the Custom API payload.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from moderation.providers.webhook import view_json
from moderation.rules import MAX_CONTEXT_WINDOW
from moderation.types import MessageView, ReceiverView, UserView
from server.models import Message, User
from server.services.contracts import GroupLookup, MediaSource, UserLookup
from server.storage.ports import MessageRepository

SENDER_WINDOW_SECONDS = 600
#: The sender's recent messages given to spam behaviour detectors (repeats, bursts): enough for
#: the default limits (3 conversations, 8 messages in a burst) with room for custom rules.
SENDER_RECENT_LIMIT = 20
#: Views of context and recent messages kept between evaluations (FIFO).
NEIGHBOUR_VIEWS = 20_000


def user_view(user: User | None, uid: str) -> UserView:
    if user is None:
        return UserView(uid, uid, "user", (), 0)
    return UserView(user.uid, user.name, user.role, user.tags, user.created_at)


class MessageViews:
    """Builds the engine's views; keeps neighbours' views while they do not change."""

    def __init__(
        self,
        store: MessageRepository,
        users: UserLookup,
        groups: GroupLookup,
        media: MediaSource | None = None,
    ) -> None:
        self._media = media
        self._store = store
        self._users = users
        self._groups = groups
        self._neighbours: OrderedDict[tuple[int, int, int, int], MessageView] = OrderedDict()

    def forget(self) -> None:
        """Drop the kept views (messages were deleted: retention)."""
        self._neighbours.clear()

    async def views(
        self, message: Message, *, window: int, recent: bool
    ) -> tuple[MessageView, list[MessageView], list[MessageView]]:
        """The view of ``message``, up to ``window`` messages of context before it, and (when
        ``recent``) the sender's recent messages. The view of a media message carries its
        media (decoded only if a detector looks); context views never do."""
        cache: dict[str, Any] = {}
        view = await self._view(message, cache)
        if message.attachment is not None and self._media is not None:
            view = dataclasses.replace(view, media=self._media.content(message.attachment))
        context_rows = (
            await self._store.recent(message.conversation_key, before=message.id, limit=window)
            if window > 0
            else []
        )
        recent_rows = (
            await self._store.recent_of_sender(
                message.sender,
                since=message.sent_at - SENDER_WINDOW_SECONDS,
                limit=SENDER_RECENT_LIMIT,
            )
            if recent
            else []
        )
        context = await self._neighbour_views(context_rows, cache)
        others = await self._neighbour_views([m for m in recent_rows if m.id != message.id], cache)
        return view, context, others

    async def all_views(
        self, message: Message
    ) -> tuple[MessageView, list[MessageView], list[MessageView]]:
        """Everything any rule may read (dry runs of rules that may not be enabled)."""
        return await self.views(message, window=MAX_CONTEXT_WINDOW, recent=True)

    async def _neighbour_views(
        self, messages: Sequence[Message], cache: dict[str, Any]
    ) -> list[MessageView]:
        """Views of context or recent messages, kept while each message does not change.

        The same neighbours are viewed again for every new message of a conversation or
        sender. A kept view is keyed by what changes the viewed content: an edit bumps
        ``rev``, a deletion sets ``deleted_at`` (``updated_at`` alone is in seconds, and an
        edit in the second the message was sent would not change it). Their sender and
        receiver views may lag a later profile change; the engine's filters only look at the
        message being judged, whose view is always fresh.
        """
        views: list[MessageView] = []
        for message in messages:
            key = (message.id, message.updated_at, message.rev, message.deleted_at)
            view = self._neighbours.get(key)
            if view is None:
                view = await self._view(message, cache)
                self._neighbours[key] = view
                if len(self._neighbours) > NEIGHBOUR_VIEWS:
                    self._neighbours.popitem(last=False)
            views.append(view)
        return views

    async def _view(self, message: Message, cache: dict[str, Any]) -> MessageView:
        key = "u:" + message.sender
        if key not in cache:
            cache[key] = user_view(await self._users.user(message.sender), message.sender)
        rkey = f"r:{message.receiver_type}:{message.receiver}"
        if rkey not in cache:
            cache[rkey] = await self.receiver_view(message.receiver, message.receiver_type)
        return MessageView(
            id=message.id,
            conversation_id=message.conversation_id,
            category=message.category,
            message_type=message.type,
            text=message.text,
            data=message.data,
            sender=cache[key],
            receiver=cache[rkey],
            sent_at=message.sent_at,
        )

    async def sender_view(self, uid: str | None) -> UserView:
        """The view of a sender named by uid (``evaluate`` when none, or unknown)."""
        user = await self._users.user(uid) if uid is not None else None
        return user_view(user, user.uid if user else "evaluate")

    async def receiver_view(self, receiver: str, receiver_type: str) -> ReceiverView:
        if receiver_type == "group":
            group = await self._groups.group(receiver)
            if group is None:
                return ReceiverView("group", receiver, receiver, (), None, 0)
            return ReceiverView(
                "group", group.guid, group.name, group.tags, group.type, group.created_at
            )
        user = await self._users.user(receiver)
        if user is None:
            return ReceiverView("user", receiver, receiver, (), None, 0)
        return ReceiverView("user", user.uid, user.name, user.tags, None, user.created_at)


class InflightMessages:
    """Messages being judged by the workers: the Custom API payload carries the Message
    object (PROTOCOL.md), which a view alone does not hold; for a media message, with the
    ``attachment`` that ``attach`` gives (links the provider can fetch)."""

    def __init__(
        self,
        store: MessageRepository,
        attach: Callable[[Message], Awaitable[dict[str, Any] | None]] | None = None,
    ) -> None:
        self._store = store
        self._attach = attach
        self._messages: dict[int, Message] = {}

    def add(self, message: Message) -> None:
        self._messages[message.id] = message

    def remove(self, message: Message) -> None:
        self._messages.pop(message.id, None)

    async def message_json(self, view: MessageView) -> Mapping[str, object]:
        """The Message object for a view (a ``MessageResolver`` for the Custom API)."""
        message = self._messages.get(view.id)
        if message is None and view.id:
            message = await self._store.get_message(view.id)
        if message is None:
            return view_json(view)
        body = message.to_json()
        if message.attachment is not None and self._attach is not None:
            attachment = await self._attach(message)
            if attachment is not None:
                body["attachment"] = attachment
        return body
