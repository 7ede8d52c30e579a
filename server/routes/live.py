"""The dashboard's live socket, ``/dashboard/live`` (issue 17 item 3).

Authenticated by the operator session cookie (``server/staff_sessions.py`` also refuses a
handshake from another origin: cross-site WebSocket hijacking). Frames are JSON objects:

- server -> dashboard: ``hello`` (``operator``, the open ``claims``), ``held`` (``item``, as
  ``GET /moderation/queue`` shows one), ``changed`` (``state``: reload that queue),
  ``decided`` (``messageId``, ``decision``, ``by``), ``claimed`` / ``released``
  (``messageId``, ``by``), ``claim_refused`` (``messageId``, ``by``: who holds it), ``error``.
- dashboard -> server: ``{"type": "claim" | "release", "messageId": n}`` (moderators and
  admins).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from server.auth import StaffRole, staff_level
from server.errors import ClientError
from server.jsoncodec import INT_MAX
from server.routes.common import staff_session
from server.services.audit import actor_label
from server.services.operators import OperatorService
from server.services.staff_feed import StaffFeed, Subscriber

log = logging.getLogger(__name__)

#: Closing before the handshake is accepted refuses it (HTTP 403): no valid session. 1013:
#: the dashboard fell behind its feed.
CLOSE_UNAUTHORIZED = 4401
CLOSE_BEHIND = 1013
#: How often an open socket checks that its session still counts (seconds without a frame).
RECHECK_SECONDS = 30.0


def route(feed: StaffFeed, operators: OperatorService) -> WebSocketRoute:
    async def endpoint(ws: WebSocket) -> None:
        try:
            session = staff_session(ws)
        except ClientError:
            session = None
        if session is None:
            await ws.close(CLOSE_UNAUTHORIZED)
            return
        await ws.accept()
        actor = actor_label(session.principal)
        may_claim = (staff_level(session.principal) or 0) >= StaffRole.MODERATOR
        sub = feed.subscribe(actor, session.principal.groups)
        writer = asyncio.create_task(
            _write(ws, sub, operators, session.session_id), name="dashboard-live-writer"
        )
        try:
            await ws.send_json(
                {
                    "type": "hello",
                    "operator": session.operator.to_json(),
                    "claims": feed.claims(),
                }
            )
            while True:
                frame = await ws.receive_json()
                await _handle(ws, feed, actor, may_claim, frame)
        except (WebSocketDisconnect, RuntimeError, ValueError):
            pass  # closed by the page, or sent something that is not JSON
        finally:
            writer.cancel()
            (outcome,) = await asyncio.gather(writer, return_exceptions=True)
            if isinstance(outcome, Exception):  # the page went away mid-send: nothing to do
                log.debug("dashboard live writer ended: %r", outcome)
            feed.unsubscribe(sub)

    return WebSocketRoute("/dashboard/live", endpoint)


async def _write(
    ws: WebSocket, sub: Subscriber, operators: OperatorService, session_id: str
) -> None:
    while True:
        try:
            frame = await asyncio.wait_for(sub.queue.get(), RECHECK_SECONDS)
        except TimeoutError:
            if not await operators.still_valid(session_id):
                await ws.close(CLOSE_UNAUTHORIZED)  # signed out, disabled or expired since
                return
            continue
        if sub.overflowed:
            await ws.close(CLOSE_BEHIND)
            return
        await ws.send_json(frame)


async def _handle(ws: WebSocket, feed: StaffFeed, actor: str, may_claim: bool, frame: Any) -> None:
    kind = frame.get("type") if isinstance(frame, dict) else None
    message_id = frame.get("messageId") if isinstance(frame, dict) else None
    if kind not in ("claim", "release") or not (
        isinstance(message_id, int)
        and not isinstance(message_id, bool)
        and 0 < message_id <= INT_MAX
    ):
        await ws.send_json(
            {"type": "error", "message": "send {type: claim|release, messageId: <id>}"}
        )
        return
    if not may_claim:
        await ws.send_json({"type": "error", "message": "viewers do not claim items"})
        return
    if kind == "release":
        feed.release(message_id, actor)
        return
    holder = feed.claim(message_id, actor)
    if holder is not None:
        await ws.send_json({"type": "claim_refused", "messageId": message_id, "by": holder})
