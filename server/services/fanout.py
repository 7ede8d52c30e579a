"""Who gets a message's frames: receivers now (blocks removed), or everyone who may hold a copy.

Shared by messaging (sends, edits, deletes) and verdicts (delivery after approval, withdrawal).

A text message is encoded once for its whole audience (the hot path). A media message is
encoded per viewer: its ``attachment.url`` is a link signed for that viewer
(``MediaAttachments.attachments``: one media read, then one HMAC per viewer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from server import protocol
from server.hub import Connection, Hub
from server.models import Message
from server.services.blocks import BlockService
from server.services.contracts import MediaAttachments, UserLookup
from server.services.groups import GroupService

#: How ``protocol.message_frame`` starts a ``message`` frame (a first delivery), as opposed
#: to ``message.edited`` and the others that ``deliver`` also carries.
_NEW_MESSAGE = '{"type":"message",'


class Fanout:
    """Reads members and blocks, then queues one pre-encoded frame on the hub (or, for a
    media message, one per viewer)."""

    def __init__(
        self,
        hub: Hub,
        groups: GroupService,
        blocks: BlockService,
        *,
        users: UserLookup | None = None,
        media: MediaAttachments | None = None,
        hidden: Callable[[Message], bool] | None = None,
        delivered: Callable[[Message, list[str]], None] | None = None,
    ) -> None:
        self._hub = hub
        #: Told of every first delivery of a message (offline push, ``server/push.py``);
        #: it must not wait.
        self._delivered = delivered
        #: A shadow-banned sender's messages are never delivered (``services/restrictions.py``).
        self._hidden = hidden
        self._groups = groups
        self._blocks = blocks
        self._users = users
        self._media = media

    # ----------------------------------------------------------------- per-viewer bodies

    async def bodies(
        self,
        message: Message,
        uids: Iterable[str],
        *,
        patch: Mapping[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The message object per viewer uid, its attachment's ``url`` signed for each
        (``patch`` overrides fields, e.g. ``moderationStatus``). Without an attachment the
        bodies are one shared dict."""
        body = message.to_json()
        if patch:
            body.update(patch)
        uids = list(dict.fromkeys(uids))
        attachment = message.attachment
        media_id = attachment.get("mediaId") if attachment else None
        if not isinstance(media_id, str) or self._media is None or self._users is None:
            return dict.fromkeys(uids, body)
        viewers = [u for uid in uids if (u := await self._users.user(uid)) is not None]
        links = await self._media.attachments(media_id, viewers)
        return {uid: {**body, "attachment": links.get(uid, attachment)} for uid in uids}

    async def encoded_for(
        self, message: Message, uid: str, *, patch: Mapping[str, Any] | None = None
    ) -> str:
        """The message object for one viewer, encoded."""
        if message.attachment is None and not patch:
            return protocol.encode_json(message.to_json())
        return protocol.encode_json((await self.bodies(message, (uid,), patch=patch))[uid])

    async def send_each(
        self,
        message: Message,
        kind: str,
        uids: Iterable[str],
        *,
        patch: Mapping[str, Any] | None = None,
        extra: str = "",
        exclude: Connection | None = None,
    ) -> None:
        """A ``kind`` frame of ``message`` to each of ``uids``, encoded for each viewer
        (once for all when it carries no attachment)."""
        uids = list(uids)
        if message.attachment is None:
            body = message.to_json()
            if patch:
                body.update(patch)
            frame = protocol.message_frame(kind, protocol.encode_json(body), extra=extra)
            self._hub.send(uids, frame, exclude=exclude)
            return
        for uid, body in (await self.bodies(message, uids, patch=patch)).items():
            frame = protocol.message_frame(kind, protocol.encode_json(body), extra=extra)
            self._hub.send((uid,), frame, exclude=exclude)

    async def deliver_message(self, message: Message, kind: str) -> None:
        """A ``kind`` frame of ``message`` to its receivers now, encoded per viewer."""
        if self._hidden is not None and self._hidden(message):
            return
        receivers = await self.receivers(message.sender, message.receiver, message.receiver_type)
        await self.send_each(message, kind, receivers)
        if kind == "message" and self._delivered is not None:
            self._delivered(message, receivers)

    # ----------------------------------------------------------------- audiences

    async def receivers(self, sender: str, receiver: str, receiver_type: str) -> list[str]:
        """Who gets a message from ``sender`` now, with blocks removed (never the sender)."""
        if receiver_type == "user":
            return [] if receiver == sender else [receiver]
        members = await self._groups.members(receiver)
        blocked, blocked_by = await self._blocks.blocks_of(sender)
        return [u for u in members if u != sender and u not in blocked and u not in blocked_by]

    async def deliver(self, message: Message, frame: str) -> None:
        """``frame`` to the message's receivers now."""
        if self._hidden is not None and self._hidden(message):
            return
        receivers = await self.receivers(message.sender, message.receiver, message.receiver_type)
        self._hub.send(receivers, frame)
        if self._delivered is not None and frame.startswith(_NEW_MESSAGE):
            self._delivered(message, receivers)

    async def audience(self, message: Message) -> list[str]:
        """Everyone but the sender who may hold a copy: the peer, or the group's members.

        Unlike delivery, blocks do not narrow it: a withdrawal or deletion tells nothing new.
        """
        if message.receiver_type == "user":
            return [message.receiver]
        members = await self._groups.members(message.receiver)
        return [uid for uid in members if uid != message.sender]

    async def to_audience(
        self, message: Message, frame: str, *, exclude: Connection | None = None
    ) -> None:
        if self._hidden is not None and self._hidden(message):
            return  # no one else ever had it
        self._hub.send(await self.audience(message), frame, exclude=exclude)

    async def withdraw(self, message: Message) -> None:
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
        await self.to_audience(message, frame)
