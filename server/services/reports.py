"""User reports as notices (issue 15 item 2, DSA Art. 16): a category, an explanation and the
message; routed live to the group's own moderators as well as app staff; escalated when
nobody handles them.

- ``report``: checks, stores (once per reporter and message), queues the message as
  ``reported`` for app staff, emits ``message.reported``, and for a message in a group sends
  ``report.new`` to the group's moderators, admins and owner who are connected (not to the
  reporter). Group moderators learn who reported only when the app allows it
  (``--group-reports-show-reporter``); app staff always do.
- ``group_reports``: the open reports on a group's messages, for its moderators (the same
  hiding) and staff.
- Escalation: a report nobody has handled ``escalate_after`` seconds after it came in puts its
  message in the staff queue's ``escalated`` state (once: the queue keeps one row per message
  and state) and emits the ``report.escalated`` webhook event. A staff decision on the message
  closes both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from server import protocol
from server.auth import Principal
from server.clock import Clock
from server.errors import BadRequest, Conflict, NotFound
from server.hub import Hub
from server.models import Message, Scope, User
from server.services.contracts import EventSink
from server.services.groups import GroupService
from server.storage.ports import ModerationRepository
from server.storage.types import Audit

log = logging.getLogger(__name__)

CATEGORIES = (
    "spam",
    "harassment",
    "hate",
    "sexual",
    "violence",
    "self_harm",
    "illegal",
    "other",
)
#: How often the escalation check runs, in seconds.
CHECK_EVERY = 30.0


@dataclass(frozen=True)
class ReportOptions:
    #: Whether a group's moderators see who reported (app staff always do).
    show_reporter: bool = False
    #: Seconds an unhandled report waits before it is escalated; 0: never.
    escalate_after: int = 3600


class Reports:
    def __init__(
        self,
        repo: ModerationRepository,
        hub: Hub,
        groups: GroupService,
        *,
        message: Callable[[int], Awaitable[Message]],
        can_view: Callable[[str, Message], Awaitable[bool]],
        events: EventSink,
        clock: Clock,
        options: ReportOptions | None = None,
    ) -> None:
        self._repo = repo
        self._hub = hub
        self._groups = groups
        self._message = message
        self._can_view = can_view
        self._events = events
        self._clock = clock
        options = options or ReportOptions()
        self._show_reporter = options.show_reporter
        self._escalate_after = options.escalate_after
        self._task: asyncio.Task[None] | None = None

    async def report(
        self, user: User, message_id: int, reason: str, remarks: str, category: object
    ) -> dict[str, Any]:
        """A user report; the acknowledgement body (the wire calls it ``message.flagged``)."""
        if category is None:
            category = "other"
        if category not in CATEGORIES:
            raise BadRequest(
                "field 'category' must be one of " + ", ".join(CATEGORIES), {"field": "category"}
            )
        message = await self._message(message_id)
        if message.sender == user.uid:
            raise BadRequest("you cannot report your own message", {"messageId": message_id})
        if not await self._can_view(user.uid, message):
            raise NotFound(f"message {message_id} not found", {"messageId": message_id})
        if not reason.strip():
            raise BadRequest("field 'reason' is empty", {"field": "reason"})
        report, created = await self._repo.add_report(
            message_id, user.uid, reason, remarks, self._clock.now(), str(category)
        )
        if not created:
            raise Conflict("you already reported this message", {"messageId": message_id})
        self._events.emit("message.reported", {"report": report})
        if message.receiver_type == "group":
            await self._tell_group(message, report)
        return {"messageId": message_id, "reportId": report["id"], "report": report}

    def _for_group(self, report: dict[str, Any]) -> dict[str, Any]:
        """A report as a group's moderators see it."""
        if self._show_reporter:
            return report
        return {k: v for k, v in report.items() if k != "reporter"}

    async def _tell_group(self, message: Message, report: dict[str, Any]) -> None:
        members = await self._groups.members(message.receiver)
        staff = [
            uid for uid, scope in members.items() if scope >= Scope.MODERATOR and uid != report["reporter"]
        ]  # fmt: skip
        if not staff:
            return
        body = {
            **self._for_group(report),
            "reportId": report["id"],
            "conversationId": message.conversation_id,
            "groupId": message.receiver,
        }
        self._hub.send(staff, protocol.encode("report.new", body))

    async def group_reports(
        self, actor: Principal, guid: str, *, limit: int
    ) -> list[dict[str, Any]]:
        """``GET /groups/{guid}/reports``: open reports on the group's messages, oldest first;
        the group's moderators and up, and app staff (who alone see the reporter, unless the
        app lets group moderators see it too)."""
        await self._groups.require_group_staff(actor, guid)
        is_staff = actor.is_staff
        out: list[dict[str, Any]] = []
        for item in await self._repo.queue("reported", limit=1000):
            try:
                message = await self._message(item.message_id)
            except NotFound:
                continue
            if message.receiver_type != "group" or message.receiver != guid:
                continue
            reports = await self._repo.reports_for(message.id)
            out.append(
                {
                    "message": message.to_json(),
                    "reports": reports if is_staff else [self._for_group(r) for r in reports],
                    "at": item.at,
                }
            )
            if len(out) >= limit:
                break
        return out

    # ------------------------------------------------------------------ escalation

    async def escalate_due(self) -> int:
        """Escalate the reports unhandled for ``escalate_after`` seconds; how many."""
        now = self._clock.now()
        escalated = {i.message_id for i in await self._repo.queue("escalated", limit=10_000)}
        count = 0
        for item in await self._repo.queue("reported", limit=1000):
            if item.at > now - self._escalate_after or item.message_id in escalated:
                continue
            # With several processes each runs this check: only the one whose entry is new
            # audits and emits the event (once per report, not once per process).
            queued = await self._repo.enqueue(
                item.message_id,
                "escalated",
                None,
                now,
                audit=Audit(
                    "moderation",
                    "report.escalate",
                    str(item.message_id),
                    {"waitedSeconds": now - item.at},
                ),
            )
            if not queued:
                continue
            self._events.emit(
                "report.escalated",
                {
                    "messageId": item.message_id,
                    "reportedAt": item.at,
                    "waitedSeconds": now - item.at,
                },
            )
            count += 1
        return count

    def start(self) -> None:
        if self._escalate_after > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="report-escalation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        every = min(CHECK_EVERY, max(1.0, self._escalate_after / 4))
        while True:
            await asyncio.sleep(every)
            try:
                await self.escalate_due()
            except Exception:
                log.exception("escalating reports failed")
