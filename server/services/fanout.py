"""Who gets a message's frames: receivers now (blocks removed), or everyone who may hold a copy.

Shared by messaging (sends, edits, deletes) and verdicts (delivery after approval, withdrawal).
"""

from __future__ import annotations

import dataclasses

from server import protocol
from server.hub import Connection, Hub
from server.models import Message
from server.services.blocks import BlockService
from server.services.groups import GroupService


class Fanout:
    """Reads members and blocks, then queues one pre-encoded frame on the hub."""

    def __init__(self, hub: Hub, groups: GroupService, blocks: BlockService) -> None:
        self._hub = hub
        self._groups = groups
        self._blocks = blocks

    async def receivers(self, sender: str, receiver: str, receiver_type: str) -> list[str]:
        """Who gets a message from ``sender`` now, with blocks removed (never the sender)."""
        if receiver_type == "user":
            return [] if receiver == sender else [receiver]
        members = await self._groups.members(receiver)
        blocked, blocked_by = await self._blocks.blocks_of(sender)
        return [u for u in members if u != sender and u not in blocked and u not in blocked_by]

    async def deliver(self, message: Message, frame: str) -> None:
        """``frame`` to the message's receivers now."""
        receivers = await self.receivers(message.sender, message.receiver, message.receiver_type)
        self._hub.send(receivers, frame)

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
