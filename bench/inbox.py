"""The inbox's cost on SQLite: a user with 10,000 conversations and 100,000 messages.

Builds a throw-away database through the real storage (the triggers keep the heads), then
times ``GET /me/conversations``'s service call: the first page, a deep page, and the
directory search; and the insert rate with and without the inbox triggers.

Run: ``python bench/inbox.py [--conversations 10000] [--messages 100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from server.auth import API_KEY_PRINCIPAL, Principal, Role
from server.conversations import conversation_id
from server.crypto import load_keyring
from server.models import Message, Status, User
from server.services.inbox import DirectoryService, InboxService, decode_cursor
from server.storage.inbox import InboxPosition
from server.storage.sqlite import SqliteStorage
from server.storage.types import NewMessage

ME = "me"
GROUPS = 200


def new(sender: str, receiver: str, n: int, at: int, kind: str = "user") -> NewMessage:
    return NewMessage(
        muid=f"m{n}",
        conversation_id=conversation_id(sender, receiver, kind),
        sender=sender,
        receiver=receiver,
        receiver_type=kind,
        category="custom",
        type="n",
        text=None,
        data={"n": n},
        metadata={},
        tags=(),
        parent_id=None,
        attachment=None,
        status=Status.UNMODERATED,
        at=at,
    )


async def insert_all(store: SqliteStorage, messages: list[NewMessage]) -> float:
    start = time.perf_counter()
    for i in range(0, len(messages), 500):
        await asyncio.gather(*(store.chat.insert_message(m) for m in messages[i : i + 500]))
    return len(messages) / (time.perf_counter() - start)


async def render(message: Message, uid: str | None) -> dict[str, Any]:
    return message.to_json()


async def timed(call: Any, runs: int = 20) -> float:
    """The median of ``runs`` calls, in milliseconds."""
    spent = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - start) * 1000)
    return statistics.median(spent)


async def main(conversations: int, total: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        store = SqliteStorage(data / "parley.db", load_keyring(data, {}), synchronous="NORMAL")
        await store.open()
        try:
            per = max(1, total // conversations)
            at = 1_760_000_000
            messages = []
            for n in range(total):
                peer = f"peer{n % conversations}"
                sender, receiver = (ME, peer) if n % 3 == 0 else (peer, ME)
                messages.append(new(sender, receiver, n, at + n // 10))
            # and GROUPS groups of 50 members each (me among them), 5 messages in each
            await store.db.write(_people(conversations))
            for g in range(GROUPS):
                for k in range(5):
                    n = total + g * 5 + k
                    messages.append(new(f"peer{(g + k) % 50}", f"grp{g}", n, at + n // 10, "group"))
            rate = await insert_all(store, messages)
            print(
                f"stored {len(messages)} messages: {total} in {conversations} 1:1"
                f" conversations ({per} each), the rest in {GROUPS} groups"
            )
            print(f"insert rate with the inbox triggers: {rate:,.0f} messages/s")
            inbox = InboxService(store.inbox, render=render)
            me = User(ME, ME, "user", (), {}, 0, 0)  # the service reads only its uid
            first = await inbox.conversations(me, limit=50, before=None)
            assert len(first["conversations"]) == 50 and first["next"]
            ms = await timed(lambda: inbox.conversations(me, limit=50, before=None))
            print(f"first page (50): {ms:.2f} ms")
            page = first
            for _ in range(100):  # 100 pages down: conversation 5,000
                page = await inbox.conversations(me, limit=50, before=page_cursor(page))
            deep = page_cursor(page)
            ms = await timed(lambda: inbox.conversations(me, limit=50, before=deep))
            print(f"page 101 (50): {ms:.2f} ms")
            ms = await timed(lambda: inbox.conversations(me, limit=100, before=None))
            print(f"one page of 100: {ms:.2f} ms")
            directory = DirectoryService(store.inbox, scope="shared_groups")
            plain = Principal(uid=ME, role=Role.USER)
            for search in ("peer1", "p", ""):
                ms = await timed(
                    lambda s=search: directory.search(plain, search=s, cursor=None, limit=20)
                )
                print(f"directory search {search!r} (shared groups, 20): {ms:.2f} ms")
            ms = await timed(
                lambda: directory.search(API_KEY_PRINCIPAL, search="peer1", cursor=None, limit=20)
            )
            print(f"directory search 'peer1' (everyone, 20): {ms:.2f} ms")
            # the same insert load without the triggers, for their cost on the hot path
            await store.db.write(_drop_triggers)
            more = [new(ME, f"peer{n % conversations}", total + n, at) for n in range(20_000)]
            bare = await insert_all(store, more)
            print(f"insert rate without the triggers: {bare:,.0f} messages/s")
        finally:
            await store.close()


def page_cursor(page: dict[str, Any]) -> InboxPosition:
    return decode_cursor(page["next"])


def _people(count: int) -> Any:
    """The users (``me`` and the peers) and the groups' memberships, in one write."""

    async def op(conn: Any) -> None:
        await conn.executemany(
            "INSERT INTO users (uid, name, role, created_at, updated_at) VALUES (?, ?, 'user', 0, 0)",
            [(ME, "Me"), *((f"peer{i}", f"Peer {i}") for i in range(count))],
        )
        await conn.executemany(
            "INSERT INTO members (guid, uid, scope, joined_at) VALUES (?, ?, 1, 0)",
            [
                (f"grp{g}", uid)
                for g in range(GROUPS)
                for uid in (ME, *(f"peer{(g + k) % 50}" for k in range(49)))
            ],
        )

    return op


async def _drop_triggers(conn: Any) -> None:
    async with conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
    ) as cur:
        names = [row[0] for row in await cur.fetchall()]
    for name in names:
        await conn.execute(f"DROP TRIGGER {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.conversations, args.messages))
