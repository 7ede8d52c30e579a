"""Users, groups (members, bans) and blocks: plaintext rows, audited writes; the SQL both
backends share (``sqlite/users.py`` and ``postgres/users.py`` run it, see ``sql.py``)."""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

from server.models import Group, Scope, User
from server.storage.sealing import dumps
from server.storage.sql import SharedSql, SqlTx
from server.storage.types import Audit


def _now() -> int:
    return int(time.time())


class UsersSql(SharedSql):
    """``ports.UserRepository``."""

    @abstractmethod
    def _forget_erased(self) -> None:
        """Drop what the backend keeps in memory of erased messages (content, not even there)."""

    @staticmethod
    def _row_to_user(row: Any) -> User:
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
        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "INSERT INTO users"
                " (uid, name, role, tags, metadata, created_at, updated_at, account)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.uid,
                    user.name,
                    user.role,
                    dumps(list(user.tags)),
                    dumps(user.metadata),
                    user.created_at,
                    user.updated_at,
                    user.account,
                ),
            )
            await tx.audit(audit, user.created_at)

        await self._transact(op)

    async def get_user(self, uid: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE uid = ?", (uid,))
        return self._row_to_user(row) if row else None

    async def update_user(self, user: User, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "UPDATE users SET name = ?, role = ?, tags = ?, metadata = ?, updated_at = ?,"
                " banned = ? WHERE uid = ?",
                (
                    user.name,
                    user.role,
                    dumps(list(user.tags)),
                    dumps(user.metadata),
                    user.updated_at,
                    int(user.banned),
                    user.uid,
                ),
            )
            await tx.audit(audit, user.updated_at)

        await self._transact(op)

    async def delete_user(self, uid: str, at: int, *, erase: bool, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            if erase:
                await tx.execute(
                    "DELETE FROM receipts WHERE uid = ? OR message_id IN"
                    " (SELECT id FROM messages WHERE sender = ?)",
                    (uid, uid),
                )
                await tx.execute("DELETE FROM messages WHERE sender = ?", (uid,))
                await tx.execute("DELETE FROM blocks WHERE blocker = ? OR blocked = ?", (uid, uid))
                await tx.execute("DELETE FROM bans WHERE uid = ?", (uid,))
                await tx.execute("DELETE FROM users WHERE uid = ?", (uid,))
            else:
                await tx.execute(
                    "UPDATE users SET deleted_at = ?, updated_at = ? WHERE uid = ?", (at, at, uid)
                )
            await tx.execute("DELETE FROM members WHERE uid = ?", (uid,))
            await tx.audit(audit, at)

        await self._transact(op)
        if erase:
            self._forget_erased()


class GroupsSql(SharedSql):
    """``ports.GroupRepository``."""

    async def create_group(self, group: Group, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "INSERT INTO groups (guid, name, type, tags, owner, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    group.guid,
                    group.name,
                    group.type,
                    dumps(list(group.tags)),
                    group.owner or "",
                    group.created_at,
                    group.updated_at,
                ),
            )
            if group.owner is not None:
                await tx.execute(
                    "INSERT INTO members (guid, uid, scope, joined_at) VALUES (?, ?, ?, ?)",
                    (group.guid, group.owner, int(Scope.OWNER), group.created_at),
                )
            await tx.audit(audit, group.created_at)

        await self._transact(op)

    async def get_group(self, guid: str) -> Group | None:
        row = await self._one("SELECT * FROM groups WHERE guid = ?", (guid,))
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
        rows = await self._all("SELECT uid, scope FROM members WHERE guid = ?", (guid,))
        return {r["uid"]: Scope(r["scope"]) for r in rows}

    async def groups_of(self, uid: str) -> list[str]:
        rows = await self._all("SELECT guid FROM members WHERE uid = ? ORDER BY guid", (uid,))
        return [r["guid"] for r in rows]

    async def set_member(self, guid: str, uid: str, scope: Scope, at: int, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute(
                "INSERT INTO members (guid, uid, scope, joined_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (guid, uid) DO UPDATE SET scope = excluded.scope",
                (guid, uid, int(scope), at),
            )
            await tx.audit(audit, at)

        await self._transact(op)

    async def remove_member(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute("DELETE FROM members WHERE guid = ? AND uid = ?", (guid, uid))
            await tx.audit(audit, _now())

        await self._transact(op)

    async def ban(self, guid: str, uid: str, reason: str, by: str, at: int, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute("DELETE FROM members WHERE guid = ? AND uid = ?", (guid, uid))
            await tx.execute(
                "INSERT INTO bans (guid, uid, reason, by_uid, at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (guid, uid) DO UPDATE SET reason = excluded.reason,"
                " by_uid = excluded.by_uid, at = excluded.at",
                (guid, uid, reason, by, at),
            )
            await tx.audit(audit, at)

        await self._transact(op)

    async def unban(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute("DELETE FROM bans WHERE guid = ? AND uid = ?", (guid, uid))
            await tx.audit(audit, _now())

        await self._transact(op)

    async def is_banned(self, guid: str, uid: str) -> bool:
        row = await self._one("SELECT 1 FROM bans WHERE guid = ? AND uid = ?", (guid, uid))
        return row is not None


class BlocksSql(SharedSql):
    """``ports.BlockRepository``."""

    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        """(users ``uid`` blocked, users who blocked ``uid``)."""
        rows = await self._all(
            "SELECT blocker, blocked FROM blocks WHERE blocker = ? OR blocked = ?", (uid, uid)
        )
        blocked = {r["blocked"] for r in rows if r["blocker"] == uid}
        blocked_by = {r["blocker"] for r in rows if r["blocked"] == uid}
        return blocked, blocked_by

    async def add_blocks(self, blocker: str, uids: Sequence[str], at: int) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.executemany(
                "INSERT INTO blocks (blocker, blocked, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                [(blocker, u, at) for u in uids],
            )

        await self._transact(op)

    async def remove_block(self, blocker: str, uid: str) -> None:
        async def op(tx: SqlTx) -> None:
            await tx.execute("DELETE FROM blocks WHERE blocker = ? AND blocked = ?", (blocker, uid))

        await self._transact(op)
