"""The WebSocket half of the SDK: one authenticated connection, request/reply by frame id,
and a buffer of server frames that callers wait on or subscribe to."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import ssl as ssl_module
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client.sdk.errors import ServerError
from client.sdk.events import Event

Listener = Callable[[Event], Awaitable[None] | None]
Predicate = Callable[[Event], bool]


class ParleyClient:
    """An async client for ``/ws``.

    ``auth_mode="frame"`` sends the token as the first frame (what browsers do);
    ``"header"`` sends ``Authorization: Bearer`` on the upgrade request.
    Frames that answer a :meth:`request` resolve it; every other frame is buffered for
    :meth:`next_event` and passed to listeners registered with :meth:`on`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        auth_mode: Literal["frame", "header"] = "frame",
        ssl: ssl_module.SSLContext | None = None,
        origin: str | None = None,
        open_timeout: float = 10.0,
        buffer_size: int = 100_000,
    ) -> None:
        self.url = url
        self.token = token
        self.auth_mode = auth_mode
        self.ssl = ssl
        self.origin = origin
        self.open_timeout = open_timeout
        self.user: dict[str, Any] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[Event]] = {}
        self._buffer: deque[Event] = deque(maxlen=buffer_size)
        self._arrived = asyncio.Condition()
        self._listeners: dict[str, list[Listener]] = {}
        self._closed = asyncio.Event()
        self._close_code: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> dict[str, Any]:
        """Open and authenticate; returns the user of ``auth.ok``."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.auth_mode == "header" else None
        self._ws = await connect(
            self.url,
            additional_headers=headers,
            ssl=self.ssl,
            origin=self.origin,  # type: ignore[arg-type]
            open_timeout=self.open_timeout,
            compression=None,
            max_size=2**20,
        )
        if self.auth_mode == "frame":
            await self._ws.send(json.dumps({"type": "auth", "id": "auth", "token": self.token}))
        first = self._decode(await asyncio.wait_for(self._ws.recv(), self.open_timeout))
        if first.type != "auth.ok":
            code = await self._close_after_refusal()
            err = ServerError.from_body(first.data)
            err.details.setdefault("closeCode", code)
            raise err
        self.user = dict(first.data.get("user") or {})
        self._reader = asyncio.create_task(self._read(), name=f"parley-reader-{self.url}")
        return self.user

    async def _close_after_refusal(self) -> int | None:
        assert self._ws is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.wait_closed(), 5)
        self._close_code = self._ws.close_code
        self._closed.set()
        return self._close_code

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None

    async def __aenter__(self) -> ParleyClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def close_code(self) -> int | None:
        """The close code the server sent, once the connection is closed."""
        return self._close_code

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Wait until the server closes the connection; returns its close code."""
        await asyncio.wait_for(self._closed.wait(), timeout)
        return self._close_code

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _decode(raw: str | bytes) -> Event:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ValueError(f"server sent a frame without a type: {raw!r:.200}")
        return Event(data["type"], data)

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                event = self._decode(raw)
                waiter = self._pending.pop(event.id, None) if event.id is not None else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(event)
                    continue
                async with self._arrived:
                    self._buffer.append(event)
                    self._arrived.notify_all()
                for listener in (
                    *self._listeners.get(event.type, ()),
                    *self._listeners.get("*", ()),
                ):
                    result = listener(event)
                    if inspect.isawaitable(result):
                        await result
        except ConnectionClosed:
            pass
        finally:
            self._close_code = self._ws.close_code
            self._closed.set()
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"connection closed ({self._close_code})"))
            self._pending.clear()
            async with self._arrived:
                self._arrived.notify_all()

    def on(self, event_type: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every frame of ``event_type`` (``"*"`` for all frames).

        Returns a function that removes the listener.
        """
        self._listeners.setdefault(event_type, []).append(listener)
        return lambda: self._listeners[event_type].remove(listener)

    def _take(self, types: tuple[str, ...], predicate: Predicate | None) -> Event | None:
        for event in self._buffer:
            if (not types or event.type in types) and (predicate is None or predicate(event)):
                self._buffer.remove(event)
                return event
        return None

    async def next_event(
        self, *types: str, timeout: float = 5.0, predicate: Predicate | None = None
    ) -> Event:
        """The oldest buffered frame of one of ``types`` (any type if none) matching
        ``predicate``, waiting up to ``timeout`` seconds for it to arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with self._arrived:
            while True:
                found = self._take(types, predicate)
                if found is not None:
                    return found
                left = deadline - loop.time()
                if left <= 0:
                    seen = [e.type for e in self._buffer]
                    raise TimeoutError(f"no {types or 'frame'} within {timeout}s; buffered: {seen}")
                if self._closed.is_set():
                    raise ConnectionError(
                        f"connection closed ({self._close_code}) waiting for {types}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), left)

    async def expect_no_event(
        self, *types: str, within: float = 0.5, predicate: Predicate | None = None
    ) -> None:
        """Assert that no frame of ``types`` arrives (or is buffered) within ``within`` s."""
        try:
            event = await self.next_event(*types, timeout=within, predicate=predicate)
        except (TimeoutError, ConnectionError):
            return
        raise AssertionError(f"unexpected {event.type} frame: {event.data}")

    def drain(self) -> list[Event]:
        """Remove and return every buffered frame."""
        events = list(self._buffer)
        self._buffer.clear()
        return events

    # ------------------------------------------------------------------ writing

    async def send_raw(self, text: str) -> None:
        """Send one text frame as is (for tests of bad input)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(text)

    async def send(self, frame: dict[str, Any]) -> None:
        """Send a frame without waiting for a reply (receipts, typing)."""
        await self.send_raw(json.dumps(frame))

    async def request(self, frame: dict[str, Any], *, timeout: float = 10.0) -> Event:
        """Send ``frame`` with an id and wait for the frame that answers it.

        Raises :class:`ServerError` when the answer is an ``error`` frame.
        """
        frame_id = str(frame.get("id") or f"c-{next(self._ids)}")
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = fut
        try:
            await self.send({**frame, "id": frame_id})
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(frame_id, None)
        if reply.type == "error":
            raise ServerError.from_body(reply.data)
        return reply

    async def send_message(self, body: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any]:
        """``message.send`` with ``body``; returns the stored message of ``message.sent``.

        A ``muid`` is generated when absent, so a retry of the same body is idempotent.
        """
        frame = {"type": "message.send", "muid": uuid.uuid4().hex, **body}
        return (await self.request(frame, timeout=timeout)).message

    async def send_text(
        self,
        receiver: str,
        text: str,
        *,
        receiver_type: str = "user",
        muid: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
        parent_id: int | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "receiver": receiver,
            "receiverType": receiver_type,
            "category": "message",
            "messageType": "text",
            "text": text,
            "metadata": metadata or {},
            "tags": tags or [],
            "parentId": parent_id,
        }
        if muid is not None:
            body["muid"] = muid
        return await self.send_message(body, timeout=timeout)

    async def send_custom(
        self,
        receiver: str,
        message_type: str,
        data: Any,
        *,
        receiver_type: str = "user",
        muid: str | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "receiver": receiver,
            "receiverType": receiver_type,
            "category": "custom",
            "messageType": message_type,
            "data": data,
            "metadata": metadata or {},
        }
        if muid is not None:
            body["muid"] = muid
        return await self.send_message(body, timeout=timeout)

    async def send_media(
        self,
        receiver: str,
        media_id: str,
        message_type: str,
        caption: str | None = None,
        *,
        receiver_type: str = "user",
        muid: str | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send an ``image``, ``video``, ``audio`` or ``file`` message carrying ``media_id``
        (from :meth:`RestClient.upload`), with an optional ``caption`` (its ``text``)."""
        body: dict[str, Any] = {
            "receiver": receiver,
            "receiverType": receiver_type,
            "category": "message",
            "messageType": message_type,
            "mediaId": media_id,
            "metadata": metadata or {},
        }
        if caption is not None:
            body["text"] = caption
        if muid is not None:
            body["muid"] = muid
        return await self.send_message(body, timeout=timeout)

    async def edit(self, message_id: int, text: str) -> dict[str, Any]:
        reply = await self.request({"type": "message.edit", "messageId": message_id, "text": text})
        return reply.message

    async def delete(self, message_id: int) -> dict[str, Any]:
        reply = await self.request({"type": "message.delete", "messageId": message_id})
        return reply.message

    async def flag(self, message_id: int, reason: str, remarks: str = "") -> dict[str, Any]:
        """Report a message to the moderators; returns the ``message.flagged`` frame."""
        frame = {"type": "message.flag", "messageId": message_id, "reason": reason}
        reply = await self.request({**frame, "remarks": remarks})
        return reply.data

    async def react(self, message_id: int, emoji: str) -> dict[str, Any]:
        """``reaction.add``: returns the ``message.reaction`` reply (``reactions``: the
        message's counts by emoji). Adding one the caller already has changes nothing."""
        frame = {"type": "reaction.add", "messageId": message_id, "emoji": emoji}
        return (await self.request(frame)).data

    async def unreact(self, message_id: int, emoji: str) -> dict[str, Any]:
        """``reaction.remove``: returns the ``message.reaction`` reply."""
        frame = {"type": "reaction.remove", "messageId": message_id, "emoji": emoji}
        return (await self.request(frame)).data

    async def reply_text(
        self, parent: dict[str, Any], text: str, *, muid: str | None = None
    ) -> dict[str, Any]:
        """Reply in ``parent``'s thread (``parentId``), in the same conversation, as seen
        by this user: a 1:1 reply goes to the other participant."""
        if parent["receiverType"] == "group":
            receiver = parent["receiver"]
        else:
            me = self.user.get("uid")
            receiver = parent["receiver"] if parent["sender"] == me else parent["sender"]
        return await self.send_text(
            receiver, text, receiver_type=parent["receiverType"], muid=muid, parent_id=parent["id"]
        )

    async def receipt(self, message_id: int, receipt_type: str = "read") -> None:
        """Tell the sender the message was ``delivered`` or ``read`` (no reply on success)."""
        await self.send({"type": "receipt", "messageId": message_id, "receiptType": receipt_type})

    async def typing(
        self, receiver: str, state: str = "start", *, receiver_type: str = "user"
    ) -> None:
        await self.send(
            {"type": "typing", "receiver": receiver, "receiverType": receiver_type, "state": state}
        )

    async def ping(self, *, timeout: float = 10.0) -> None:
        await self.request({"type": "ping"}, timeout=timeout)
