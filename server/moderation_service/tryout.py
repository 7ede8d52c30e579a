"""Trying rules out without storing anything: a text evaluated as if sent now, and a rule's
dry run over the stored messages of the last days."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moderation.rules import Rule
from moderation.types import Detection, MessageView, ReceiverView, Verdict
from server.clock import Clock
from server.moderation_service.gate import ModerationService
from server.moderation_service.views import MessageViews
from server.protocol import MESSAGE_TYPES
from server.storage.ports import MessageRepository

DRY_RUN_LIMIT = 5000


@dataclass(frozen=True)
class Evaluation:
    """What the engine made of a text: the verdict, every detection, and the condition kinds
    that have no detector here (they never match)."""

    verdict: Verdict
    detections: Sequence[Detection]
    unavailable: frozenset[str]


class Tryout:
    """Evaluates texts and dry-runs rules with the gate's current engine."""

    def __init__(
        self,
        gate: ModerationService,
        views: MessageViews,
        messages: MessageRepository,
        *,
        clock: Clock,
    ) -> None:
        self._gate = gate
        self._views = views
        self._messages = messages
        self._clock = clock

    async def evaluate_text(
        self,
        text: str,
        message_type: str,
        sender: str | None,
        receiver: str | None,
        receiver_type: str,
    ) -> Evaluation:
        """Evaluate a text as if ``sender`` sent it now to ``receiver``, storing nothing."""
        sender_view = await self._views.sender_view(sender)
        if receiver:
            receiver_view = await self._views.receiver_view(receiver, receiver_type)
        else:
            receiver_view = ReceiverView(receiver_type, "evaluate", "evaluate", (), None, 0)
        view = MessageView(
            id=0,
            conversation_id="evaluate",
            category="message" if message_type in MESSAGE_TYPES else "custom",
            message_type=message_type,
            text=text,
            data=None,
            sender=sender_view,
            receiver=receiver_view,
            sent_at=self._clock.now(),
        )
        engine = self._gate.engine
        verdict = await engine.evaluate(view)
        detections = await engine.detect_all(view)
        return Evaluation(verdict, detections, engine.unavailable_kinds())

    async def dry_run(
        self, rule: Rule, days: int, *, limit: int = DRY_RUN_LIMIT
    ) -> list[dict[str, Any]]:
        """What ``rule`` would have matched among stored messages of the last ``days`` days."""
        since = self._clock.now() - days * 86400
        engine = self._gate.engine
        hits: list[dict[str, Any]] = []
        for message in await self._messages.messages_since(since, limit=limit):
            if message.text is None and message.data is None:
                continue
            view, context, recent = await self._views.all_views(message)
            match = await engine.evaluate_rule(rule, view, context=context, sender_recent=recent)
            if match is not None:
                hits.append(
                    {
                        "messageId": message.id,
                        "conversationId": message.conversation_id,
                        "sender": message.sender,
                        "text": message.text,
                        "sentAt": message.sent_at,
                        "currentStatus": message.status.value,
                        "reason": match.reason,
                        "confidence": match.confidence,
                        "actions": [a.value for a in match.actions],
                    }
                )
        return hits
