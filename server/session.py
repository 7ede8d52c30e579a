"""One WebSocket connection: origin check, auth, a reader loop and a writer task.

The reader parses each text frame with ``protocol.parse_frame`` and calls the services;
a bad frame is answered with an ``error`` frame and the connection stays open. Binary frames
close with 1003; oversized frames (1009) and invalid UTF-8 (1007) are closed by the WebSocket
layer before they reach us. Outgoing frames go through the connection's bounded queue, drained
by the writer task, so fan-out never awaits a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from server import protocol
from server.auth import bearer_token
from server.errors import (
    AuthInvalid,
    AuthRequired,
    BadRequest,
    ClientError,
    Forbidden,
    InternalError,
)
from server.hub import Connection, Hub
from server.metrics import Metrics
from server.models import User
from server.services.messaging import MessagingService
from server.services.reactions import Reactions
from server.services.users import UserService
from server.settings import Settings

log = logging.getLogger(__name__)

CLOSE_INTERNAL_ERROR = 1011


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Non-browser clients send no Origin; a browser's must be same-host or configured."""
    if not origin:
        return True
    if "*" in allowed or origin in allowed:
        return True
    return host is not None and urlsplit(origin).netloc == host


class Session:
    """Serves one WebSocket from accept to close."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        hub: Hub,
        users: UserService,
        messaging: MessagingService,
        settings: Settings,
        limits: protocol.Limits,
        metrics: Metrics,
        reactions: Reactions | None = None,
    ) -> None:
        self.ws = ws
        self.reactions = reactions
        self.hub = hub
        self.users = users
        self.messaging = messaging
        self.settings = settings
        self.metrics = metrics
        self.limits = limits
        self.user: User | None = None
        self.conn: Connection | None = None
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._close_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        ws = self.ws
        if not origin_allowed(
            ws.headers.get("origin"), ws.headers.get("host"), self.settings.allowed_origins
        ):
            await ws.close(code=protocol.CLOSE_FORBIDDEN)  # before accept: HTTP 403
            return
        await ws.accept()
        try:
            authenticated = await self._authenticate()
        except ClientError as exc:
            code = protocol.CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else protocol.CLOSE_AUTH
            await self._send_now(protocol.error_frame(exc))
            await self._close_now(code, exc.message)
            return
        except WebSocketDisconnect:
            return
        if authenticated is None:
            return
        user, auth_frame_id = authenticated
        self.user = user
        conn = Connection(user.uid, queue_size=self.settings.send_queue_size, close=self.close)
        self.conn = conn
        self.hub.register(conn)
        self.metrics.connections.inc()
        self._writer = asyncio.create_task(self._write_loop(conn), name=f"ws-writer-{conn.id}")
        conn.push(protocol.encode("auth.ok", {"user": user.to_json()}, frame_id=auth_frame_id))
        try:
            await self._read_loop(user, conn)
        finally:
            if self._close_task is not None:
                # The reader saw the close coming: let the explaining frame and the close
                # frame go out before the handler returns (else the socket is just dropped).
                with contextlib.suppress(Exception):
                    await self._close_task
            self.hub.unregister(conn)
            self.metrics.connections.dec()
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _authenticate(self) -> tuple[User, str | None] | None:
        token = bearer_token(self.ws.headers)
        frame_id: str | None = None
        if token is None:
            try:
                message = await asyncio.wait_for(self.ws.receive(), self.settings.auth_timeout)
            except TimeoutError as exc:
                raise AuthRequired("no auth frame within the time limit") from exc
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None:
                # Binary frames close 1003 (Transport); say why first, as for any bad first frame.
                await self._send_now(
                    protocol.error_frame(BadRequest("binary frames are not supported"))
                )
                await self._close_now(protocol.CLOSE_UNSUPPORTED, "binary frames are not supported")
                return None
            try:
                frame_id, command = protocol.parse_frame(text, self.limits)
            except protocol.ProtocolError as exc:
                raise AuthRequired("the first frame must be auth") from exc
            if not isinstance(command, protocol.Auth):
                raise AuthRequired("the first frame must be auth")
            token = command.token
        return await self.users.authenticate(token), frame_id

    async def _read_loop(self, user: User, conn: Connection) -> None:
        while not self._closing:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self.close(protocol.CLOSE_UNSUPPORTED, "binary frames are not supported")
                return
            frame_id: str | None = None
            # The user as it is now, not as it was at auth: a role change applies to the
            # next frame (a deletion or server ban has already closed the connection).
            current = await self.users.user(user.uid)
            if current is None or current.banned:
                self.close(protocol.CLOSE_FORBIDDEN, "user deleted or banned")
                return
            user = current
            try:
                frame_id, command = protocol.parse_frame(text, self.limits)
                await self._dispatch(user, conn, command, frame_id)
            except protocol.ProtocolError as exc:
                self._error(conn, exc.error, exc.frame_id)
            except ClientError as exc:
                self._error(conn, exc, frame_id)
            except Exception:
                log.exception("frame handling failed for %s", user.uid)
                conn.push(
                    protocol.encode(
                        "error",
                        {"code": InternalError.code, "message": "internal error", "details": {}},
                        frame_id=frame_id,
                    )
                )

    def _error(self, conn: Connection, exc: ClientError, frame_id: str | None) -> None:
        self.metrics.errors.labels(exc.code).inc()
        conn.push(protocol.error_frame(exc, frame_id))

    async def _dispatch(self, user: User, conn: Connection, cmd: Any, frame_id: str | None) -> None:
        messaging = self.messaging
        if isinstance(cmd, protocol.SendMessage):
            await messaging.post_message(user, cmd, origin=conn, frame_id=frame_id)
        elif isinstance(cmd, protocol.Ping):
            conn.push(protocol.encode("pong", frame_id=frame_id))
        elif isinstance(cmd, protocol.SendReceipt):
            await messaging.receipt(user, cmd.message_id, cmd.receipt_type)
        elif isinstance(cmd, protocol.Typing):
            await messaging.typing(user, cmd.receiver, cmd.receiver_type, cmd.state)
        elif isinstance(cmd, protocol.EditMessage):
            await messaging.edit_message(
                user, cmd.message_id, cmd.text, origin=conn, frame_id=frame_id
            )
        elif isinstance(cmd, protocol.DeleteMessage):
            principal = UserService.principal_for(user)
            await messaging.delete_message(
                principal, cmd.message_id, origin=conn, frame_id=frame_id
            )
        elif isinstance(cmd, protocol.FlagMessage):
            # A user report; the wire calls its acknowledgement ``message.flagged``.
            ack = await messaging.report_message(
                user, cmd.message_id, cmd.reason, cmd.remarks, cmd.category
            )
            conn.push(protocol.encode("message.flagged", ack, frame_id=frame_id))
        elif isinstance(cmd, protocol.React) and self.reactions is not None:
            await self.reactions.react(
                user, cmd.message_id, cmd.emoji, add=cmd.add, origin=conn, frame_id=frame_id
            )
        elif isinstance(cmd, protocol.Auth):
            await self._reauthenticate(user, conn, cmd.token, frame_id)

    async def _reauthenticate(
        self, user: User, conn: Connection, token: str, frame_id: str | None
    ) -> None:
        """A later ``auth`` frame (a client refreshing its token) is checked like the first:
        a bad token is answered with an error and closes 4401 (4403 for a deleted or banned
        user); a valid token of another user is refused and the connection stays as it was."""
        try:
            again = await self.users.authenticate(token)
        except (AuthInvalid, AuthRequired, Forbidden) as exc:
            self._error(conn, exc, frame_id)
            code = protocol.CLOSE_FORBIDDEN if isinstance(exc, Forbidden) else protocol.CLOSE_AUTH
            self.close(code, exc.message)
            return
        if again.uid != user.uid:
            raise BadRequest(
                f"this connection is authenticated as {user.uid!r}; open another for {again.uid!r}",
                {"field": "token"},
            )
        conn.push(protocol.encode("auth.ok", {"user": again.to_json()}, frame_id=frame_id))

    async def _write_loop(self, conn: Connection) -> None:
        queue = conn.queue
        try:
            send = self.ws.send_text
            while True:
                await send(await queue.get())
                while not queue.empty():  # a backlog goes out without a wake-up per frame
                    await send(queue.get_nowait())
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closing = True
        except Exception:
            # A frame that cannot be sent (a bug upstream): the connection would otherwise
            # stay open with its replies lost. Close it, so the client reconnects.
            log.exception("writer failed for %s; closing the connection", conn.uid)
            self._closing = True
            await self._close_now(CLOSE_INTERNAL_ERROR, "internal error")

    def close(self, code: int, reason: str) -> None:
        """Close from outside the reader (slow client, ban, deletion); safe to call twice."""
        if self._closing:
            return
        self._closing = True
        task = asyncio.get_running_loop().create_task(self._close_after_flush(code, reason))
        task.add_done_callback(_log_task_error)
        self._close_task = task

    async def _close_after_flush(self, code: int, reason: str) -> None:
        if self._writer is not None and code != protocol.CLOSE_TRY_AGAIN:
            # Give queued frames (the error that explains the close) a moment to go out.
            for _ in range(50):
                if self.conn is None or self.conn.queue.empty():
                    break
                await asyncio.sleep(0.01)
            self._writer.cancel()
        await self._close_now(code, reason)

    async def _send_now(self, text: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.send_text(text)

    async def _close_now(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.DISCONNECTED:
            return
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self.ws.close(code=code, reason=reason[:120])


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("close task failed", exc_info=task.exception())
