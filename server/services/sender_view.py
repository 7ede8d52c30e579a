"""What history keeps for a message's sender: the receipts their message got and, once it is
disapproved, the reason, so that a client that reloads shows the ticks and block reasons the
live frames (``receipt``, ``message.moderated``) showed before."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.models import Message, Status
from server.services.restrictions import Restrictions
from server.storage.ports import MessageRepository


class SenderView:
    """Adds ``receipts`` and ``moderation`` to the viewer's own messages in a history page."""

    def __init__(self, store: MessageRepository, restrictions: Restrictions | None) -> None:
        self._store = store
        self._restrictions = restrictions

    async def add(
        self, bodies: list[dict[str, Any]], messages: Sequence[Message], uid: str | None
    ) -> None:
        """``bodies`` are ``messages`` rendered for ``uid``, changed in place: on each of
        ``uid``'s own messages ``receipts`` (``{"delivered": n, "read": n}``, users per type,
        leaving out readers a shadow ban covers there: their receipts are never forwarded)
        and, on a disapproved one, ``moderation`` as ``message.moderated`` carried it."""
        own = [(b, m) for b, m in zip(bodies, messages, strict=True) if m.sender == uid]
        if not own:
            return
        first = own[0][1]  # one page is one conversation
        shadowed = (
            self._restrictions.shadowed_in(first.receiver, first.receiver_type)
            if self._restrictions is not None
            else []
        )
        counts = await self._store.receipt_counts([m.id for _, m in own], exclude=shadowed)
        for body, m in own:
            got = counts.get(m.id, {})
            body["receipts"] = {"delivered": got.get("delivered", 0), "read": got.get("read", 0)}
            if m.status is Status.DISAPPROVED and m.moderation is not None:
                body["moderation"] = m.moderation.to_json()
