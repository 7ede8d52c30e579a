"""Users, groups (members, bans) and blocks in PostgreSQL: plaintext rows, audited writes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from server.models import Group, Scope, User
from server.storage.postgres.base import Repository
from server.storage.postgres.transaction import insert_audit
from server.storage.postgres.writer import WriteTx
from server.storage.sealing import dumps
from server.storage.types import Audit


def _now() -> int:
    return int(time.time())


class PostgresUsers(Repository):
    """``ports.UserRepository``."""

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
        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "INSERT INTO users"
                " (uid, name, role, tags, metadata, created_at, updated_at, account)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                user.uid,
                user.name,
                user.role,
                dumps(list(user.tags)),
                dumps(user.metadata),
                user.created_at,
                user.updated_at,
                user.account,
            )
            await insert_audit(tx, audit, user.created_at)

        await self._db.write(op)

    async def get_user(self, uid: str) -> User | None:
        row = await self._db.fetchone("SELECT * FROM users WHERE uid = $1", uid)
        return self._row_to_user(row) if row else None

    async def update_user(self, user: User, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "UPDATE users SET name = $1, role = $2, tags = $3, metadata = $4,"
                " updated_at = $5, banned = $6 WHERE uid = $7",
                user.name,
                user.role,
                dumps(list(user.tags)),
                dumps(user.metadata),
                user.updated_at,
                int(user.banned),
                user.uid,
            )
            await insert_audit(tx, audit, user.updated_at)

        await self._db.write(op)

    async def delete_user(self, uid: str, at: int, *, erase: bool, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            if erase:
                await tx.execute(
                    "DELETE FROM receipts WHERE uid = $1 OR message_id IN"
                    " (SELECT id FROM messages WHERE sender = $1)",
                    uid,
                )
                await tx.execute("DELETE FROM messages WHERE sender = $1", uid)
                await tx.execute("DELETE FROM blocks WHERE blocker = $1 OR blocked = $1", uid)
                await tx.execute("DELETE FROM bans WHERE uid = $1", uid)
                await tx.execute("DELETE FROM users WHERE uid = $1", uid)
            else:
                await tx.execute(
                    "UPDATE users SET deleted_at = $1, updated_at = $1 WHERE uid = $2", at, uid
                )
            await tx.execute("DELETE FROM members WHERE uid = $1", uid)
            await insert_audit(tx, audit, at)

        await self._db.write(op)
        if erase:
            self.forget_opened()  # the erased messages' content: not even in memory


class PostgresGroups(Repository):
    """``ports.GroupRepository``."""

    async def create_group(self, group: Group, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "INSERT INTO groups (guid, name, type, tags, owner, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                group.guid,
                group.name,
                group.type,
                dumps(list(group.tags)),
                group.owner or "",
                group.created_at,
                group.updated_at,
            )
            if group.owner is not None:
                await tx.execute(
                    "INSERT INTO members (guid, uid, scope, joined_at) VALUES ($1, $2, $3, $4)",
                    group.guid,
                    group.owner,
                    int(Scope.OWNER),
                    group.created_at,
                )
            await insert_audit(tx, audit, group.created_at)

        await self._db.write(op)

    async def get_group(self, guid: str) -> Group | None:
        row = await self._db.fetchone("SELECT * FROM groups WHERE guid = $1", guid)
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
        rows = await self._db.fetchall("SELECT uid, scope FROM members WHERE guid = $1", guid)
        return {r["uid"]: Scope(r["scope"]) for r in rows}

    async def groups_of(self, uid: str) -> list[str]:
        rows = await self._db.fetchall("SELECT guid FROM members WHERE uid = $1 ORDER BY guid", uid)
        return [r["guid"] for r in rows]

    async def set_member(self, guid: str, uid: str, scope: Scope, at: int, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute(
                "INSERT INTO members (guid, uid, scope, joined_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (guid, uid) DO UPDATE SET scope = excluded.scope",
                guid,
                uid,
                int(scope),
                at,
            )
            await insert_audit(tx, audit, at)

        await self._db.write(op)

    async def remove_member(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute("DELETE FROM members WHERE guid = $1 AND uid = $2", guid, uid)
            await insert_audit(tx, audit, _now())

        await self._db.write(op)

    async def ban(self, guid: str, uid: str, reason: str, by: str, at: int, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute("DELETE FROM members WHERE guid = $1 AND uid = $2", guid, uid)
            await tx.execute(
                "INSERT INTO bans (guid, uid, reason, by_uid, at) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (guid, uid) DO UPDATE SET reason = excluded.reason,"
                " by_uid = excluded.by_uid, at = excluded.at",
                guid,
                uid,
                reason,
                by,
                at,
            )
            await insert_audit(tx, audit, at)

        await self._db.write(op)

    async def unban(self, guid: str, uid: str, audit: Audit) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute("DELETE FROM bans WHERE guid = $1 AND uid = $2", guid, uid)
            await insert_audit(tx, audit, _now())

        await self._db.write(op)

    async def is_banned(self, guid: str, uid: str) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM bans WHERE guid = $1 AND uid = $2", guid, uid)
        return row is not None


class PostgresBlocks(Repository):
    """``ports.BlockRepository``."""

    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        """(users ``uid`` blocked, users who blocked ``uid``)."""
        rows = await self._db.fetchall(
            "SELECT blocker, blocked FROM blocks WHERE blocker = $1 OR blocked = $1", uid
        )
        blocked = {r["blocked"] for r in rows if r["blocker"] == uid}
        blocked_by = {r["blocker"] for r in rows if r["blocked"] == uid}
        return blocked, blocked_by

    async def add_blocks(self, blocker: str, uids: Sequence[str], at: int) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.executemany(
                "INSERT INTO blocks (blocker, blocked, at) VALUES ($1, $2, $3)"
                " ON CONFLICT DO NOTHING",
                [(blocker, u, at) for u in uids],
            )

        await self._db.write(op)

    async def remove_block(self, blocker: str, uid: str) -> None:
        async def op(tx: WriteTx) -> None:
            await tx.execute("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2", blocker, uid)

        await self._db.write(op)
