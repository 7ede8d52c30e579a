"""SQLite store on aiosqlite: one writer task with group commit, one reader connection.

Every write is a small coroutine (an *op*) queued to the writer. The writer takes all the ops
waiting, runs them in one transaction and commits once, then resolves each op's future: a
caller hears back only after its row is durable, and concurrent senders share one fsync.
If any op in a batch fails, the batch is rolled back and each op is re-run in a transaction
of its own, so one bad op never costs the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from server import jsoncodec
from server.crypto import KeyRing
from server.models import Group, Message, Moderation, Scope, Status, User
from server.storage.base import Audit, AuditEntry, NewMessage
from server.storage.conn import WriteConnection
from server.storage.migrations import MIGRATIONS
from server.storage.recent import RecentIndex

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[WriteConnection], Awaitable[Any]]

#: How many of the newest messages per conversation / sender are kept decrypted in memory
#: (at least the largest context window, 10, and the 20 the spam detectors are given).
RECENT_PER_CONVERSATION = 16
RECENT_PER_SENDER = 24
RECENT_MAX_MESSAGES = 150_000

MESSAGE_COLUMNS = (
    "id, muid, conversation_id, sender, receiver, receiver_type, category, type, kid, body,"
    " parent_id, sent_at, updated_at, edited_at, deleted_at, status, rev, shown"
)


def _aad(message_id: int, conversation_id: str) -> bytes:
    return f"parley:message:{message_id}:{conversation_id}".encode()


_dumps = jsoncodec.dumps


class SqliteStore:
    """The embedded store. ``open()`` migrates; ``close()`` drains the writer first."""

    def __init__(
        self,
        path: Path,
        keyring: KeyRing,
        *,
        synchronous: str = "FULL",
        batch_max: int = 512,
        queue_size: int = 10_000,
    ) -> None:
        self._path = path
        self._keyring = keyring
        self._synchronous = synchronous
        self._batch_max = batch_max
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] = asyncio.Queue(
            queue_size
        )
        self._writer: WriteConnection | None = None
        # COMMIT (the fsync) runs here, off the event loop; statements run on the loop.
        self._commit_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")
        self._reader: aiosqlite.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_id = 1
        self.batches = 0
        self.ops = 0
        # Decrypted newest messages per conversation and per sender, for moderation context.
        # Bounded in messages (about 0.6 KB each, shared by both indexes): a miss only costs
        # a database read.
        self.recent_by_conversation = RecentIndex(
            lambda m: m.conversation_key,
            per_key=RECENT_PER_CONVERSATION,
            max_keys=8192,
            max_messages=RECENT_MAX_MESSAGES,
        )
        self.recent_by_sender = RecentIndex(
            lambda m: m.sender,
            per_key=RECENT_PER_SENDER,
            max_keys=8192,
            max_messages=RECENT_MAX_MESSAGES,
        )

    # ----------------------------------------------------------------- lifecycle

    def _pragmas(self) -> tuple[str, ...]:
        return (
            "PRAGMA journal_mode=WAL",
            f"PRAGMA synchronous={self._synchronous}",
            "PRAGMA busy_timeout=5000",
            "PRAGMA foreign_keys=ON",
        )

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in self._pragmas():
            await conn.execute(pragma)
        return conn

    def _connect_writer(self) -> WriteConnection:
        raw = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        for pragma in self._pragmas():
            raw.execute(pragma)
        return WriteConnection(raw)

    async def open(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Owner only (0600): users, groups and metadata are stored in the clear. SQLite gives
        # the -wal and -shm files the database file's mode; files made by older versions
        # (0644) are tightened here.
        os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        self._writer = self._connect_writer()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self._path}{suffix}", 0o600)
        await self._migrate(self._writer)
        self._reader = await self._connect()
        await self._reader.execute("PRAGMA query_only=ON")
        async with self._writer.execute("SELECT COALESCE(MAX(id), 0) FROM messages") as cur:
            row = await cur.fetchone()
        assert row is not None
        self._next_id = int(row[0]) + 1
        self._task = asyncio.create_task(self._run_writer(), name="sqlite-writer")

    @staticmethod
    def key_ids_in_use(path: Path) -> frozenset[str]:
        """The key ids that sealed rows of the database at ``path`` name; empty if none.

        Read before ``open()``: the server refuses to start when its keyring lacks one. Cheap
        at any size once the ``<table>_kid`` indexes exist (a migration adds them): a loose
        index scan, one seek per distinct id (0.3 ms on 200k messages, measured); before that
        migration has run, one plain scan per table (about 20-80 ms per 200k messages).
        """
        if not path.exists():
            return frozenset()
        conn = sqlite3.connect(path)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            kids: set[str] = set()
            for table in ("messages", "reports", "webhook_deliveries"):  # every sealed table
                if table not in names:
                    continue
                sql = (
                    f"WITH RECURSIVE k(kid) AS (SELECT MIN(kid) FROM {table} UNION ALL"
                    f" SELECT (SELECT MIN(kid) FROM {table} WHERE kid > k.kid) FROM k"
                    " WHERE k.kid IS NOT NULL) SELECT kid FROM k WHERE kid IS NOT NULL"
                    if f"{table}_kid" in names
                    else f"SELECT DISTINCT kid FROM {table}"
                )
                kids.update(row[0] for row in conn.execute(sql))
            return frozenset(kids)
        finally:
            conn.close()

    async def _commit(self, conn: WriteConnection) -> None:
        """COMMIT in the commit thread: the event loop keeps serving while the disk syncs."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commit_thread, conn.raw.execute, "COMMIT")

    async def _migrate(self, conn: WriteConnection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        assert row is not None
        version = int(row[0])
        for number, sql in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";"):
                    if statement.strip():
                        await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={number}")
                await self._commit(conn)
            except BaseException:
                conn.raw.rollback()
                raise
            log.info("applied migration %d", number)

    async def close(self) -> None:
        if self._task is not None:
            # Queued writes may already be promised to clients: the writer drains them first.
            await self._queue.put(None)
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._writer is not None:
            self._writer.raw.close()
        if self._reader is not None:
            await self._reader.close()
        self._writer = None
        self._reader = None
        self._commit_thread.shutdown(wait=True)

    # ----------------------------------------------------------------- the writer

    async def write(self, op: Callable[[WriteConnection], Awaitable[T]]) -> T:
        """Run ``op`` inside a write transaction; return its result after the commit."""
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return await fut

    async def _run_writer(self) -> None:
        assert self._writer is not None
        conn = self._writer
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                await self._commit_batch(conn, batch)
            except asyncio.CancelledError:
                for _, fut in batch:
                    if not fut.done():
                        fut.cancel()
                raise
            except Exception:  # the database itself failed: fail the callers, keep serving
                log.exception("write batch failed")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("storage write failed"))
            if stop:
                return

    async def _commit_batch(
        self, conn: WriteConnection, batch: list[tuple[Op, asyncio.Future[Any]]]
    ) -> None:
        self.batches += 1
        self.ops += len(batch)
        results: list[Any] = []
        next_id = self._next_id
        conn.raw.execute("BEGIN IMMEDIATE")
        try:
            for op, _ in batch:
                results.append(await op(conn))
            await self._commit(conn)
        except Exception:
            _rollback(conn)
            self._next_id = next_id
            for op, fut in batch:
                await self._commit_batch_single(conn, op, fut)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(result)

    async def _commit_batch_single(
        self, conn: WriteConnection, op: Op, fut: asyncio.Future[Any]
    ) -> None:
        next_id = self._next_id
        conn.raw.execute("BEGIN IMMEDIATE")
        try:
            result = await op(conn)
            await self._commit(conn)
        except Exception as exc:
            _rollback(conn)
            self._next_id = next_id
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(result)

    # ----------------------------------------------------------------- helpers

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cur:
            row: sqlite3.Row | None = await cur.fetchone()
            return row

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        assert self._reader is not None
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    @staticmethod
    async def _audit(conn: WriteConnection, audit: Audit | None, at: int) -> None:
        if audit is None:
            return
        await conn.execute(
            "INSERT INTO audit (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
            (at, audit.actor, audit.action, audit.target, _dumps(audit.details)),
        )

    @property
    def keyring(self) -> KeyRing:
        return self._keyring

    async def audit_in(self, conn: WriteConnection, audit: Audit | None, at: int) -> None:
        """Write an audit row inside an op's transaction."""
        await self._audit(conn, audit, at)

    def _seal(
        self, message_id: int, conversation_id: str, content: dict[str, Any]
    ) -> tuple[str, bytes]:
        return self._keyring.seal(_dumps(content).encode(), _aad(message_id, conversation_id))

    def _row_to_message(self, row: sqlite3.Row) -> Message:
        content = json.loads(
            self._keyring.open(row["kid"], row["body"], _aad(row["id"], row["conversation_id"]))
        )
        mod = content.get("moderation")
        return Message(
            id=row["id"],
            muid=row["muid"],
            conversation_id=row["conversation_id"],
            sender=row["sender"],
            receiver=row["receiver"],
            receiver_type=row["receiver_type"],
            category=row["category"],
            type=row["type"],
            text=content.get("text"),
            data=content.get("data"),
            metadata=content.get("metadata") or {},
            tags=tuple(content.get("tags") or ()),
            parent_id=row["parent_id"],
            sent_at=row["sent_at"],
            updated_at=row["updated_at"],
            edited_at=row["edited_at"],
            deleted_at=row["deleted_at"],
            status=Status(row["status"]),
            rev=row["rev"],
            shown=bool(row["shown"]),
            attachment=content.get("attachment"),
            moderation=Moderation(mod["ruleId"], mod["ruleName"], mod["reason"]) if mod else None,
        )

    @staticmethod
    def _content(message: Message | NewMessage, moderation: Moderation | None) -> dict[str, Any]:
        content: dict[str, Any] = {
            "text": message.text,
            "data": message.data,
            "metadata": message.metadata,
            "tags": list(message.tags),
            "attachment": message.attachment,
        }
        if moderation is not None:
            content["moderation"] = moderation.to_json()
        return content

    # ----------------------------------------------------------------- users

    @staticmethod
    def _row_to_user(row: sqlite3.Row) -> User:
        return User(
            uid=row["uid"],
            name=row["name"],
            role=row["role"],
            tags=tuple(json.loads(row["tags"])),
            metadata=json.loads(row["metadata"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            banned=bool(row["banned"]),
            deleted_at=row["deleted_at"],
            account=row["account"],
        )

    async def create_user(self, user: User, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                "INSERT INTO users"
                " (uid, name, role, tags, metadata, created_at, updated_at, account)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.uid,
                    user.name,
                    user.role,
                    _dumps(list(user.tags)),
                    _dumps(user.metadata),
                    user.created_at,
                    user.updated_at,
                    user.account,
                ),
            )
            await self._audit(conn, audit, user.created_at)

        await self.write(op)

    async def get_user(self, uid: str) -> User | None:
        row = await self.fetchone("SELECT * FROM users WHERE uid = ?", (uid,))
        return self._row_to_user(row) if row else None

    async def update_user(self, user: User, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                "UPDATE users SET name = ?, role = ?, tags = ?, metadata = ?, updated_at = ?,"
                " banned = ? WHERE uid = ?",
                (
                    user.name,
                    user.role,
                    _dumps(list(user.tags)),
                    _dumps(user.metadata),
                    user.updated_at,
                    int(user.banned),
                    user.uid,
                ),
            )
            await self._audit(conn, audit, user.updated_at)

        await self.write(op)

    async def delete_user(self, uid: str, at: int, *, erase: bool, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            if erase:
                await conn.execute(
                    "DELETE FROM receipts WHERE uid = ? OR message_id IN"
                    " (SELECT id FROM messages WHERE sender = ?)",
                    (uid, uid),
                )
                await conn.execute("DELETE FROM messages WHERE sender = ?", (uid,))
                await conn.execute(
                    "DELETE FROM blocks WHERE blocker = ? OR blocked = ?", (uid, uid)
                )
                await conn.execute("DELETE FROM bans WHERE uid = ?", (uid,))
                await conn.execute("DELETE FROM users WHERE uid = ?", (uid,))
            else:
                await conn.execute(
                    "UPDATE users SET deleted_at = ?, updated_at = ? WHERE uid = ?", (at, at, uid)
                )
            await conn.execute("DELETE FROM members WHERE uid = ?", (uid,))
            await self._audit(conn, audit, at)

        await self.write(op)
        if erase:
            self.recent_by_conversation.clear()
            self.recent_by_sender.clear()

    # ----------------------------------------------------------------- groups

    async def create_group(self, group: Group, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                "INSERT INTO groups (guid, name, type, tags, owner, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    group.guid,
                    group.name,
                    group.type,
                    _dumps(list(group.tags)),
                    group.owner or "",
                    group.created_at,
                    group.updated_at,
                ),
            )
            if group.owner is not None:
                await conn.execute(
                    "INSERT INTO members (guid, uid, scope, joined_at) VALUES (?, ?, ?, ?)",
                    (group.guid, group.owner, int(Scope.OWNER), group.created_at),
                )
            await self._audit(conn, audit, group.created_at)

        await self.write(op)

    async def get_group(self, guid: str) -> Group | None:
        row = await self.fetchone("SELECT * FROM groups WHERE guid = ?", (guid,))
        if row is None:
            return None
        return Group(
            guid=row["guid"],
            name=row["name"],
            type=row["type"],
            tags=tuple(json.loads(row["tags"])),
            owner=row["owner"] or None,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def members(self, guid: str) -> dict[str, Scope]:
        rows = await self.fetchall("SELECT uid, scope FROM members WHERE guid = ?", (guid,))
        return {r["uid"]: Scope(r["scope"]) for r in rows}

    async def groups_of(self, uid: str) -> list[str]:
        rows = await self.fetchall("SELECT guid FROM members WHERE uid = ? ORDER BY guid", (uid,))
        return [r["guid"] for r in rows]

    async def set_member(self, guid: str, uid: str, scope: Scope, at: int, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                "INSERT INTO members (guid, uid, scope, joined_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guid, uid) DO UPDATE SET scope = excluded.scope",
                (guid, uid, int(scope), at),
            )
            await self._audit(conn, audit, at)

        await self.write(op)

    async def remove_member(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute("DELETE FROM members WHERE guid = ? AND uid = ?", (guid, uid))
            await self._audit(conn, audit, _now())

        await self.write(op)

    async def ban(self, guid: str, uid: str, reason: str, by: str, at: int, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute("DELETE FROM members WHERE guid = ? AND uid = ?", (guid, uid))
            await conn.execute(
                "INSERT OR REPLACE INTO bans (guid, uid, reason, by_uid, at) VALUES (?, ?, ?, ?, ?)",
                (guid, uid, reason, by, at),
            )
            await self._audit(conn, audit, at)

        await self.write(op)

    async def unban(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute("DELETE FROM bans WHERE guid = ? AND uid = ?", (guid, uid))
            await self._audit(conn, audit, _now())

        await self.write(op)

    async def is_banned(self, guid: str, uid: str) -> bool:
        row = await self.fetchone("SELECT 1 FROM bans WHERE guid = ? AND uid = ?", (guid, uid))
        return row is not None

    # ----------------------------------------------------------------- blocks

    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        """(users ``uid`` blocked, users who blocked ``uid``)."""
        rows = await self.fetchall(
            "SELECT blocker, blocked FROM blocks WHERE blocker = ? OR blocked = ?", (uid, uid)
        )
        blocked = {r["blocked"] for r in rows if r["blocker"] == uid}
        blocked_by = {r["blocker"] for r in rows if r["blocked"] == uid}
        return blocked, blocked_by

    async def add_blocks(self, blocker: str, uids: Sequence[str], at: int) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.executemany(
                "INSERT OR IGNORE INTO blocks (blocker, blocked, at) VALUES (?, ?, ?)",
                [(blocker, u, at) for u in uids],
            )

        await self.write(op)

    async def remove_block(self, blocker: str, uid: str) -> None:
        async def op(conn: WriteConnection) -> None:
            await conn.execute(
                "DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, uid)
            )

        await self.write(op)

    # ----------------------------------------------------------------- messages

    async def insert_message(self, new: NewMessage) -> tuple[Message, bool]:
        """Insert, idempotent on ``(sender, muid)``: returns (message, created)."""

        async def op(conn: WriteConnection) -> tuple[Message, bool] | None:
            message_id = self._next_id
            kid, body = self._seal(message_id, new.conversation_id, self._content(new, None))
            cur = await conn.execute(
                f"INSERT OR IGNORE INTO messages ({MESSAGE_COLUMNS}, conv_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 0, ?, ?)",
                (
                    message_id,
                    new.muid,
                    new.conversation_id,
                    new.sender,
                    new.receiver,
                    new.receiver_type,
                    new.category,
                    new.type,
                    kid,
                    body,
                    new.parent_id,
                    new.at,
                    new.at,
                    new.status.value,
                    int(new.status.deliverable),
                    new.conversation_key,
                ),
            )
            if cur.rowcount == 0:
                return None  # a retry: the caller reads the stored row after the commit
            self._next_id = message_id + 1
            return new.as_message(message_id), True

        result = await self.write(op)
        if result is not None:
            self._remember(result[0], new=True)
            return result
        stored = await self.find_by_muid(new.sender, new.muid)
        assert stored is not None
        return stored, False

    async def find_by_muid(self, sender: str, muid: str) -> Message | None:
        """The message ``sender`` stored under ``muid``, if any."""
        row = await self.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ? AND muid = ?",
            (sender, muid),
        )
        return None if row is None else self._row_to_message(row)

    async def get_message(self, message_id: int) -> Message | None:
        row = await self.fetchone(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?", (message_id,)
        )
        return self._row_to_message(row) if row else None

    async def history(
        self, conversation_key: str, *, before: int | None, limit: int, viewer: str | None
    ) -> list[Message]:
        """Newest ``limit`` messages below ``before`` that ``viewer`` may see, oldest first.

        Receivers see only deliverable messages; the sender also sees its pending and
        disapproved ones; ``viewer=None`` (staff) sees everything.
        """
        upper = before if before is not None else 2**62
        if viewer is None:
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_key = ? AND id < ?"
                " ORDER BY id DESC LIMIT ?"
            )
            params: tuple[Any, ...] = (conversation_key, upper, limit)
        else:
            sql = (
                f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conv_key = ? AND id < ?"
                " AND (status IN ('unmoderated', 'approved') OR sender = ?)"
                " ORDER BY id DESC LIMIT ?"
            )
            params = (conversation_key, upper, viewer, limit)
        rows = await self.fetchall(sql, params)
        return [self._row_to_message(r) for r in reversed(rows)]

    def _remember(self, message: Message, *, new: bool = False) -> None:
        """Keep the in-memory recent indexes true; called after the commit."""
        for index in (self.recent_by_conversation, self.recent_by_sender):
            if new:
                index.add(message)
            else:
                index.replace(message)

    async def recent(self, conversation_key: str, *, before: int, limit: int) -> list[Message]:
        """The newest ``limit`` deliverable, undeleted messages below ``before``, oldest first."""

        def want(m: Message) -> bool:
            return m.id < before and not m.deleted_at and m.status.deliverable

        return await self._newest(
            self.recent_by_conversation,
            conversation_key,
            want,
            limit=limit,
            load=("conv_key = ?", RECENT_PER_CONVERSATION),
            exact=(
                "conv_key = ? AND id < ? AND deleted_at = 0"
                " AND status IN ('unmoderated', 'approved')",
                (before,),
            ),
        )

    async def recent_of_sender(self, sender: str, *, since: int, limit: int) -> list[Message]:
        """The sender's newest ``limit`` messages sent at or after ``since``, oldest first."""

        def want(m: Message) -> bool:
            return m.sent_at >= since

        def reaches(oldest: Message) -> bool:
            return oldest.sent_at < since

        return await self._newest(
            self.recent_by_sender,
            sender,
            want,
            limit=limit,
            reaches=reaches,
            load=("sender = ?", RECENT_PER_SENDER),
            exact=("sender = ? AND sent_at >= ?", (since,)),
        )

    async def _newest(
        self,
        index: RecentIndex,
        key: str,
        want: Callable[[Message], bool],
        *,
        limit: int,
        reaches: Callable[[Message], bool] | None = None,
        load: tuple[str, int],
        exact: tuple[str, tuple[Any, ...]],
    ) -> list[Message]:
        """The newest ``limit`` messages of ``key`` passing ``want``, oldest first: from the
        in-memory index when it can prove the answer, else by loading the key's newest
        ``load[1]`` rows (``WHERE load[0]``) into it, else by the exact query ``exact``."""
        found = index.newest(key, want, limit=limit, reaches=reaches)
        if found is not None:
            return found
        where, per_key = load
        generation = index.generation(key)
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {where} ORDER BY id DESC LIMIT ?",
            (key, per_key),
        )
        loaded = [self._row_to_message(r) for r in rows]  # newest first
        complete = len(rows) < per_key
        index.install(key, generation, reversed(loaded), complete=complete)
        picked = [m for m in loaded if want(m)][:limit]
        if (
            len(picked) == limit
            or complete
            or (reaches is not None and loaded and reaches(loaded[-1]))
        ):
            return picked[::-1]
        exact_where, params = exact
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE {exact_where} ORDER BY id DESC LIMIT ?",
            (key, *params, limit),
        )
        return [self._row_to_message(r) for r in reversed(rows)]

    async def update_content(self, message: Message, *, status: Status, at: int) -> Message:
        """Store edited content with a new revision (any pending verdict for the old text is void)."""
        updated = _replace_message(
            message,
            status=status,
            edited_at=at,
            updated_at=at,
            rev=message.rev + 1,
            shown=message.shown or status.deliverable,
        )

        async def op(conn: WriteConnection) -> None:
            kid, body = self._seal(
                message.id, message.conversation_id, self._content(updated, None)
            )
            await conn.execute(
                "UPDATE messages SET kid = ?, body = ?, edited_at = ?, updated_at = ?, status = ?,"
                " rev = rev + 1, shown = MAX(shown, ?) WHERE id = ?",
                (kid, body, at, at, status.value, int(status.deliverable), message.id),
            )

        await self.write(op)
        self._remember(updated)
        return updated

    async def mark_deleted(self, message: Message, at: int) -> Message:
        """Soft-delete: the row stays for ordering and receipts, its content is erased."""
        updated = _replace_message(
            message,
            text=None,
            data=None,
            metadata={},
            attachment=None,
            deleted_at=at,
            updated_at=at,
        )

        async def op(conn: WriteConnection) -> None:
            kid, body = self._seal(
                message.id, message.conversation_id, self._content(updated, None)
            )
            await conn.execute(
                "UPDATE messages SET kid = ?, body = ?, deleted_at = ?, updated_at = ? WHERE id = ?",
                (kid, body, at, at, message.id),
            )

        await self.write(op)
        self._remember(updated)
        return updated

    async def set_status(
        self,
        message: Message,
        status: Status,
        moderation: Moderation | None,
        at: int,
        audit: Audit | None,
        also: Op | None = None,
    ) -> Message | None:
        """Conditional verdict: applies only if the row is still at ``message.rev`` and status.

        ``also`` runs in the same transaction (a review-queue entry). Returns the updated
        message, or None if the row moved on (edited, deleted, decided elsewhere).
        """
        updated = _replace_message(
            message,
            status=status,
            moderation=moderation,
            updated_at=at,
            shown=message.shown or status.deliverable,
        )

        # The moderation reason lives in the sealed body; seal again only when it changes
        # (an approval of a message that never had one leaves the ciphertext as it is).
        sealed = (
            None
            if moderation == message.moderation
            else self._seal(message.id, message.conversation_id, self._content(updated, moderation))
        )
        where = (message.id, message.rev, message.status.value)

        async def op(conn: WriteConnection) -> bool:
            shown = int(status.deliverable)
            if sealed is None:
                cur = await conn.execute(
                    "UPDATE messages SET status = ?, updated_at = ?, shown = MAX(shown, ?)"
                    " WHERE id = ? AND rev = ? AND status = ? AND deleted_at = 0",
                    (status.value, at, shown, *where),
                )
            else:
                cur = await conn.execute(
                    "UPDATE messages SET status = ?, kid = ?, body = ?, updated_at = ?,"
                    " shown = MAX(shown, ?)"
                    " WHERE id = ? AND rev = ? AND status = ? AND deleted_at = 0",
                    (status.value, *sealed, at, shown, *where),
                )
            if cur.rowcount == 0:
                return False
            await self._audit(conn, audit, at)
            if also is not None:
                await also(conn)
            return True

        if not await self.write(op):
            return None
        self._remember(updated)
        return updated

    async def pending_ids(self) -> list[int]:
        rows = await self.fetchall("SELECT id FROM messages WHERE status = 'pending' ORDER BY id")
        return [r["id"] for r in rows]

    async def messages_since(self, since: int, *, limit: int) -> list[Message]:
        """Stored messages sent at or after ``since``, oldest first (for rule dry-runs)."""
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sent_at >= ? AND deleted_at = 0"
            " ORDER BY id LIMIT ?",
            (since, limit),
        )
        return [self._row_to_message(r) for r in rows]

    async def messages_of_sender(self, sender: str) -> list[Message]:
        rows = await self.fetchall(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE sender = ? ORDER BY id", (sender,)
        )
        return [self._row_to_message(r) for r in rows]

    async def add_receipt(self, message_id: int, uid: str, kind: str, at: int) -> bool:
        async def op(conn: WriteConnection) -> bool:
            cur = await conn.execute(
                "INSERT OR IGNORE INTO receipts (message_id, uid, type, at) VALUES (?, ?, ?, ?)",
                (message_id, uid, kind, at),
            )
            return bool(cur.rowcount)

        return await self.write(op)

    async def receipts_of(self, uid: str) -> list[dict[str, Any]]:
        rows = await self.fetchall(
            "SELECT message_id, type, at FROM receipts WHERE uid = ? ORDER BY message_id", (uid,)
        )
        return [
            {"messageId": r["message_id"], "receiptType": r["type"], "at": r["at"]} for r in rows
        ]

    # ----------------------------------------------------------------- audit

    async def add_audit(self, audit: Audit, at: int) -> None:
        async def op(conn: WriteConnection) -> None:
            await self._audit(conn, audit, at)

        await self.write(op)

    async def audit_since(self, since: int, limit: int) -> list[AuditEntry]:
        rows = await self.fetchall(
            "SELECT * FROM audit WHERE at >= ? ORDER BY id LIMIT ?", (since, limit)
        )
        return [
            AuditEntry(
                r["id"], r["at"], r["actor"], r["action"], r["target"], json.loads(r["details"])
            )
            for r in rows
        ]


def _rollback(conn: WriteConnection) -> None:
    if conn.raw.in_transaction:
        conn.raw.execute("ROLLBACK")


def _now() -> int:
    return int(time.time())


def _replace_message(message: Message, **changes: Any) -> Message:
    return dataclasses.replace(message, **changes)
