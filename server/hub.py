"""Who is connected where, and fan-out to their connection queues.

A frame is encoded once and the same string is queued on every receiving connection. Each
connection has a bounded queue drained by its own writer task; a connection whose queue is
full is closed (1013), never awaited, so one slow client cannot stall anybody else.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class Connection:
    """One authenticated WebSocket as the hub sees it: a uid and a bounded outgoing queue."""

    def __init__(self, uid: str, *, queue_size: int, close: Callable[[int, str], None]) -> None:
        self.uid = uid
        self.id = next(_ids)
        self.queue: asyncio.Queue[str] = asyncio.Queue(queue_size)
        self.close = close
        self.overflowed = False

    def offer(self, text: str) -> bool:
        """Queue a frame that may be dropped (typing) only while the queue is under half
        full: a hint never pushes a connection towards its limit."""
        if self.overflowed or self.queue.qsize() * 2 >= (self.queue.maxsize or 1 << 30):
            return False
        self.queue.put_nowait(text)
        return True

    def push(self, text: str) -> None:
        """Queue a frame without waiting; a full queue marks the connection for closing."""
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("closing slow connection %d of %s", self.id, self.uid)
            self.close(1013, "client reads too slowly")


class Hub(Protocol):
    """The fan-out seam: a later hub may span several server processes."""

    def register(self, conn: Connection) -> None: ...
    def unregister(self, conn: Connection) -> None: ...
    def send(
        self,
        uids: Iterable[str],
        text: str,
        *,
        exclude: Connection | None = None,
        droppable: bool = False,
    ) -> int: ...
    def connections(self, uid: str) -> list[Connection]: ...
    async def online(self, uid: str) -> bool:
        """Whether ``uid`` has a live connection anywhere (offline push asks)."""
        ...

    @property
    def count(self) -> int: ...


class LocalHub:
    """The in-process hub: a dict from uid to that user's connections."""

    def __init__(self) -> None:
        self._by_uid: dict[str, set[Connection]] = {}
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def register(self, conn: Connection) -> None:
        self._by_uid.setdefault(conn.uid, set()).add(conn)
        self._count += 1

    def unregister(self, conn: Connection) -> None:
        conns = self._by_uid.get(conn.uid)
        if conns is None or conn not in conns:
            return
        conns.discard(conn)
        self._count -= 1
        if not conns:
            del self._by_uid[conn.uid]

    def send(
        self,
        uids: Iterable[str],
        text: str,
        *,
        exclude: Connection | None = None,
        droppable: bool = False,
    ) -> int:
        """Queue ``text`` on every connection of ``uids`` but ``exclude``; returns how many.

        A ``droppable`` frame (typing) skips connections whose queue is half full.
        """
        sent = 0
        for uid in uids:
            for conn in self._by_uid.get(uid, ()):
                if conn is exclude:
                    continue
                if droppable:
                    sent += conn.offer(text)
                else:
                    conn.push(text)
                    sent += 1
        return sent

    def connections(self, uid: str) -> list[Connection]:
        return list(self._by_uid.get(uid, ()))

    async def online(self, uid: str) -> bool:
        return uid in self._by_uid
