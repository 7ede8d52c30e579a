"""A client that stops reading is closed (1013) once its bounded queue fills; senders and
other receivers never wait for it."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from tests.conftest import ServerProcess, world_on

FRAMES = 3000
PAYLOAD = "x" * 4000


def open_silent_ws(server: ServerProcess, token: str) -> socket.socket:
    """A WebSocket handshake over a raw socket with a tiny receive buffer; the caller then
    stops reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_close(sock: socket.socket, deadline: float) -> int | None:
    """Read server frames until a close frame (its code) or EOF (None)."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    buf = bytearray()

    def need(n: int) -> bool:
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return False
            buf.extend(chunk)
        return True

    while True:
        if not need(2):
            return None
        opcode, length = buf[0] & 0x0F, buf[1] & 0x7F
        offset = 2
        if length == 126:
            if not need(4):
                return None
            length, offset = struct.unpack("!H", buf[2:4])[0], 4
        elif length == 127:
            if not need(10):
                return None
            length, offset = struct.unpack("!Q", buf[2:10])[0], 10
        if not need(offset + length):
            return None
        payload = bytes(buf[offset : offset + length])
        del buf[: offset + length]
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else None


async def test_client_that_stops_reading_is_closed_and_stalls_nobody(
    server_factory: type[ServerProcess],
) -> None:
    server = server_factory(  # type: ignore[call-arg]
        "--rate-limit", "0", env={"PARLEY_SEND_QUEUE_SIZE": "64"}
    )
    async with world_on(server) as w:
        sender, slow, fast = await w.user("snd"), await w.user("slow"), await w.user("fast")
        s = await w.connect(sender)
        f = await w.connect(fast)
        sock = open_silent_ws(server, await w.token(slow))
        try:
            started = time.monotonic()
            for start in range(0, FRAMES, 100):
                acks = await asyncio.gather(
                    *(
                        s.send_custom(slow, "blob", {"n": n, "p": PAYLOAD})
                        for n in range(start, start + 100)
                    )
                )
                assert all(a["moderationStatus"] == "unmoderated" for a in acks)
            # Every send was acknowledged although the receiver reads nothing, and others
            # still get their messages.
            assert time.monotonic() - started < 30
            sent = await s.send_text(fast, "still there?")
            got = await f.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
            assert got.message["text"] == "still there?"
            # Reading now drains what was written before the close, then the close itself.
            code = await asyncio.to_thread(read_until_close, sock, time.monotonic() + 10)
            assert code == 1013
        finally:
            sock.close()
