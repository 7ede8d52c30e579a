"""Media messages: sending one (``MediaSends``) and who may see its media (``MediaVisibility``).

A message of type ``image``/``video``/``audio``/``file`` carries a ``mediaId`` the sender
uploaded. Sending resolves it (the sender's own upload, of the type's kind, not yet attached:
404, 400, 409 otherwise, nothing stored), stores its attachment with the message, claims the
media for the message after the insert, and encodes every frame per viewer: each gets an
``attachment.url`` signed for them. It is moderated like text when an enabled rule covers its
type, and its caption also by the text rules (``caption``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from server import permissions, protocol
from server.clock import Clock
from server.errors import ClientError, Conflict, NotFound
from server.hub import Connection
from server.models import Message, Status, User
from server.protocol import SendMessage
from server.services.contracts import MediaAttachments, ModerationGate
from server.services.drafts import draft
from server.services.fanout import Fanout
from server.services.groups import GroupService
from server.storage.ports import MessageRepository


class MediaVisibility:
    """The media service's ``message_visible`` hook: may ``viewer`` see message
    ``message_id`` now? Its sender always (pending and disapproved too); others only once it
    is deliverable and they are its receiver or a member of its group; nobody once it is
    deleted."""

    def __init__(self, store: MessageRepository, groups: GroupService) -> None:
        self._store = store
        self._groups = groups

    async def __call__(self, viewer: User, message_id: int) -> bool:
        message = await self._store.get_message(message_id)
        if message is None or message.deleted_at:
            return False
        if message.sender == viewer.uid:
            return True
        members = (
            await self._groups.members(message.receiver) if message.receiver_type == "group" else {}
        )
        return permissions.may_view_message(viewer.uid, message, members)


class MediaSends:
    """The media path of ``MessagingService``: sends and caption edits."""

    def __init__(
        self,
        store: MessageRepository,
        fanout: Fanout,
        gate: ModerationGate,
        media: MediaAttachments | None,
        *,
        clock: Clock,
    ) -> None:
        self._store = store
        self._fanout = fanout
        self._gate = gate
        self._media = media
        self._clock = clock
        # Sends of one media id, one at a time (resolve, insert, claim); users per lock.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def send(
        self,
        sender: User,
        cmd: SendMessage,
        media_id: str,
        checks: Callable[[User, SendMessage], Awaitable[None]],
        *,
        origin: Connection | None,
        frame_id: str | None,
    ) -> Message:
        """``post_message`` for a message carrying an upload (``checks``: the rate limit and
        whether the sender may send to the receiver).

        Two sends of one media id in this process run one after the other, so the second
        finds it attached (409, or its own stored message when it is a retry of the same
        muid). Across processes (PostgreSQL) both may pass the check: the claim after the
        insert is conditional, and the loser's message is deleted before anything is
        delivered, and 409 answered.
        """
        lock, users = self._locks.get(media_id, (asyncio.Lock(), 0))
        self._locks[media_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._send(sender, cmd, media_id, checks, origin, frame_id)
        finally:
            lock, users = self._locks[media_id]
            if users <= 1:
                del self._locks[media_id]
            else:
                self._locks[media_id] = (lock, users - 1)

    async def _send(
        self,
        sender: User,
        cmd: SendMessage,
        media_id: str,
        checks: Callable[[User, SendMessage], Awaitable[None]],
        origin: Connection | None,
        frame_id: str | None,
    ) -> Message:
        media = self._media
        try:
            await checks(sender, cmd)
            if media is None:
                raise NotFound("media not found", {"mediaId": media_id})
            attachment = await media.resolve_for_send(sender.uid, media_id, cmd.message_type)
        except ClientError:
            stored = await self._store.find_by_muid(sender.uid, cmd.muid) if cmd.muid else None
            if stored is None:
                raise
            if origin is not None:
                encoded = await self._fanout.encoded_for(stored, sender.uid)
                origin.push(protocol.message_frame("message.sent", encoded, frame_id=frame_id))
            return stored
        gate = self._gate
        caption = bool(cmd.text and cmd.text.strip())
        moderated = gate.covers(cmd.category, cmd.message_type, caption=caption)
        new, verdict, judged = await draft(
            gate,
            sender.uid,
            cmd,
            moderated=moderated,
            at=self._clock.now(),
            attachment=attachment,
        )
        message, created = await self._store.insert_message(new)
        try:
            # Also on a retry that found its message stored: a crash between that insert and
            # its claim left the media unattached, and the claim is idempotent.
            await media.claim(sender.uid, media_id, message.id)
        except Conflict:
            if created:
                await self._store.mark_deleted(message, self._clock.now())
            raise
        fanout = self._fanout
        held = {"moderationStatus": Status.PENDING.value} if judged and created else None
        if origin is not None:
            encoded = await fanout.encoded_for(message, sender.uid, patch=held)
            origin.push(protocol.message_frame("message.sent", encoded, frame_id=frame_id))
        if not created:
            return message
        await fanout.send_each(message, "message", (sender.uid,), patch=held, exclude=origin)
        if judged:
            await fanout.send_each(message, "message.moderated", (sender.uid,))
            await fanout.deliver_message(message, "message")
        elif message.status.deliverable:
            await fanout.deliver_message(message, "message")
        elif message.status is Status.PENDING:
            await gate.submit(message, verdict)
        return message

    async def edited(
        self,
        message: Message,
        edited: Message,
        status: Status,
        user: User,
        origin: Connection | None,
        frame_id: str | None,
    ) -> None:
        """``edit_message``'s frames for a media message (a new caption), per viewer."""
        fanout = self._fanout
        if origin is not None:
            encoded = await fanout.encoded_for(edited, user.uid)
            origin.push(protocol.message_frame("message.edited", encoded, frame_id=frame_id))
        await fanout.send_each(edited, "message.edited", (user.uid,), exclude=origin)
        if status.deliverable:
            await fanout.deliver_message(edited, "message.edited" if message.shown else "message")
        elif status is Status.PENDING:
            await self._gate.submit(edited)
