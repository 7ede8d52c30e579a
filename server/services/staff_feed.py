"""The dashboard's live feed (issue 17 item 3): held messages, decisions, and claims.

``StaffFeed`` is an ``EventSink``: the moderation side's ``message.review_required``,
``message.flagged`` and ``message.reported`` events become ``held`` frames for every open
dashboard; the decision route reports each decision (``decided``, whoever took it, the API
key included). A claim marks who is deciding an item: another claimant is refused, and so is
another decider (``ReviewClaims.check``), until the claim is released, the item decided, the
claimant's dashboard closed, or ``claim_ttl`` seconds pass.

In memory, per process: with several processes (``--redis-url``) each has its own feed and
claims (documented in docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.clock import Clock
from server.errors import Conflict

log = logging.getLogger(__name__)

#: Webhook events that put an item in a queue, and the queue each names.
HELD_EVENTS = {
    "message.review_required": "review",
    "message.flagged": "flagged",
    "message.reported": "reported",
}


@dataclass(eq=False)  # each dashboard is itself (hashed by identity)
class Subscriber:
    """One open dashboard: its frames wait in a bounded queue; a full one ends it."""

    actor: str
    groups: frozenset[str] | None = None  # a group moderator sees items of these only
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(maxsize=512))
    overflowed: bool = False


class StaffFeed:
    """Fan-out of queue events to open dashboards, and the claims on queue items."""

    def __init__(self, *, clock: Clock, claim_ttl: int = 120) -> None:
        self._clock = clock
        self._ttl = claim_ttl
        self._subscribers: set[Subscriber] = set()
        self._claims: dict[int, tuple[str, int]] = {}  # message id -> (actor, expires at)

    # ----------------------------------------------------------------- subscribers

    def subscribe(self, actor: str, groups: frozenset[str] | None = None) -> Subscriber:
        sub = Subscriber(actor, groups)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget ``sub``; its claims go too when it was its actor's last dashboard."""
        self._subscribers.discard(sub)
        if not any(s.actor == sub.actor for s in self._subscribers):
            for message_id in [m for m, (a, _) in self._claims.items() if a == sub.actor]:
                self._release(message_id)

    @property
    def count(self) -> int:
        return len(self._subscribers)

    def publish(self, frame: dict[str, Any]) -> None:
        """Queue ``frame`` for every dashboard; never waits."""
        message = frame.get("item", {}).get("message") if frame.get("type") == "held" else None
        for sub in self._subscribers:
            if sub.overflowed:
                continue
            if sub.groups is not None and (
                frame.get("type") == "changed"
                or (
                    isinstance(message, dict)
                    and not (
                        message.get("receiverType") == "group"
                        and message.get("receiver") in sub.groups
                    )
                )
            ):
                continue  # a group moderator's dashboard: items of their groups only
            try:
                sub.queue.put_nowait(frame)
            except asyncio.QueueFull:
                sub.overflowed = True  # its socket closes; the page reconnects and reloads
                log.warning("a dashboard fell behind its live feed; closing it")

    # ----------------------------------------------------------------- EventSink

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        state = HELD_EVENTS.get(event)
        if state is None:
            return
        message = data.get("message")
        if not isinstance(message, dict):
            # A user report names the message only: dashboards showing that queue reload it.
            self.publish({"type": "changed", "state": state})
            return
        item: dict[str, Any] = {
            "message": message,
            "state": state,
            "ruleId": data.get("ruleId"),
            "at": self._clock.now(),
        }
        if data.get("reason"):
            item["moderation"] = {"ruleId": data.get("ruleId"), "reason": data.get("reason")}
        self.publish({"type": "held", "item": item})

    # ----------------------------------------------------------------- claims

    def claims(self) -> list[dict[str, Any]]:
        now = self._clock.now()
        return [
            {"messageId": m, "by": actor}
            for m, (actor, expires) in sorted(self._claims.items())
            if expires > now
        ]

    def holder(self, message_id: int) -> str | None:
        found = self._claims.get(message_id)
        if found is None or found[1] <= self._clock.now():
            return None
        return found[0]

    def claim(self, message_id: int, actor: str) -> str | None:
        """Claim the item for ``actor`` (renewing their own claim); None, or who holds it."""
        holder = self.holder(message_id)
        if holder is not None and holder != actor:
            return holder
        self._claims[message_id] = (actor, self._clock.now() + self._ttl)
        self.publish({"type": "claimed", "messageId": message_id, "by": actor})
        return None

    def release(self, message_id: int, actor: str) -> None:
        if self.holder(message_id) == actor:
            self._release(message_id)

    def _release(self, message_id: int) -> None:
        if self._claims.pop(message_id, None) is not None:
            self.publish({"type": "released", "messageId": message_id})

    def check(self, message_id: int, actor: str) -> None:
        """Conflict when someone else holds a live claim on the item."""
        holder = self.holder(message_id)
        if holder is not None and holder != actor:
            raise Conflict(
                f"message {message_id} is claimed by {holder}",
                {"messageId": message_id, "claimedBy": holder},
            )

    def decided(self, message_id: int, decision: str, actor: str) -> None:
        """A decision was taken: the item leaves every queue view, its claim ends."""
        self._claims.pop(message_id, None)
        self.publish(
            {"type": "decided", "messageId": message_id, "decision": decision, "by": actor}
        )


class FanOutSink:
    """An ``EventSink`` handing every event to several sinks (webhooks and the feed)."""

    def __init__(self, *sinks: Any) -> None:
        self._sinks = sinks

    def emit(self, event: str, data: Mapping[str, Any]) -> None:
        for sink in self._sinks:
            sink.emit(event, data)
