"""A send command turned into the row to store, judged on the send path when the rules allow:
the one recipe text, custom and media sends share (``messaging.py``, ``media_messages.py``)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from moderation.types import Verdict
from server.conversations import conversation_id
from server.models import Status
from server.protocol import SendMessage
from server.services.contracts import ModerationGate
from server.storage.types import NewMessage


async def draft(
    gate: ModerationGate,
    sender: str,
    cmd: SendMessage,
    *,
    moderated: bool,
    at: int,
    attachment: dict[str, Any] | None = None,
) -> tuple[NewMessage, Verdict | None, bool]:
    """The message to store, the inline verdict (None when the pipeline must judge it) and
    whether it is judged clean. Under rules that need no model or provider the message is
    judged here; a clean approval is then stored approved in the same commit (one write, not
    two), and any match goes through the pipeline with this verdict, not judged again."""
    new = NewMessage(
        muid=cmd.muid or uuid.uuid4().hex,
        conversation_id=conversation_id(sender, cmd.receiver, cmd.receiver_type),
        sender=sender,
        receiver=cmd.receiver,
        receiver_type=cmd.receiver_type,
        category=cmd.category,
        type=cmd.message_type,
        text=cmd.text,
        data=cmd.data,
        metadata=cmd.metadata,
        tags=cmd.tags,
        parent_id=cmd.parent_id,
        attachment=attachment,
        status=Status.PENDING if moderated else Status.UNMODERATED,
        at=at,
    )
    verdict = await gate.judge_inline(new) if moderated else None
    judged = verdict is not None and verdict.clean
    if judged:
        new = dataclasses.replace(new, status=Status.APPROVED)
    return new, verdict, judged
