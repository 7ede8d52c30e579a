"""Deadlines uvicorn does not set: a socket must send a complete request head in time.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but it arms that
timer only after a response, and any byte cancels it: a socket that connects and says
nothing, or dribbles a header line every few seconds (slowloris), is held for ever. This
protocol gives each request head a deadline, counted from the connection (or from the end of
the previous response), that incoming bytes do not extend. Once the head is in, the request
is the application's (body reads have their own limits); a WebSocket upgrade hands the socket
to the WebSocket protocol and the deadline no longer applies.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_h11(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a ``head_timeout``-second deadline on each request head."""

    class GuardedH11Protocol(H11Protocol):
        _head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_head_deadline()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the head is in (or the socket failed)
                self._disarm_head_deadline()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_head_deadline()

        def _arm_head_deadline(self) -> None:
            self._disarm_head_deadline()
            self._head_deadline = self.loop.call_later(head_timeout, self._head_too_slow)

        def _disarm_head_deadline(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            # After a WebSocket upgrade the transport belongs to another protocol.
            if self.transport.get_protocol() is self and not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol


def uvicorn_limits(
    *, head_timeout: float, keep_alive_timeout: int, max_connections: int
) -> dict[str, Any]:
    """The ``uvicorn.Config`` keywords that bound idle, slow and excess connections."""
    return {
        "http": guarded_h11(head_timeout),
        "timeout_keep_alive": keep_alive_timeout,
        # Past this many connections plus tasks, new requests are answered 503 at once.
        "limit_concurrency": max_connections,
    }
