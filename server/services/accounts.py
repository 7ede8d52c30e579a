"""Deleting, erasing and exporting an account (GDPR access and erasure).

It reaches users, blocks and groups at once, so it sits above those three services, not in
any of them.
"""

from __future__ import annotations

from typing import Any

from server.auth import Principal
from server.clock import Clock
from server.errors import NotFound
from server.services.audit import actor_label
from server.services.blocks import BlockService
from server.services.contracts import MediaPrivacy
from server.services.groups import GroupService
from server.services.users import UserService
from server.storage.ports import MessageRepository, ReactionRepository, UserRepository
from server.storage.types import Audit


class AccountService:
    """Soft delete, erasure and export of one user's account."""

    def __init__(
        self,
        store: UserRepository,
        messages: MessageRepository,
        users: UserService,
        blocks: BlockService,
        groups: GroupService,
        *,
        clock: Clock,
        media: MediaPrivacy | None = None,
        reactions: ReactionRepository | None = None,
    ) -> None:
        self._media = media
        self._reactions = reactions
        self._store = store
        self._messages = messages
        self._users = users
        self._blocks = blocks
        self._groups = groups
        self._clock = clock

    async def delete_user(self, actor: Principal, uid: str, *, erase: bool) -> None:
        """Soft-delete (the uid stays taken), or erase: the account, its messages, receipts,
        blocks, memberships and uploaded media (rows, blobs, thumbnails) are gone, and the
        uid may be created again. A soft-deleted
        user can still be erased."""
        user = await self._users.stored_user(uid)
        if user.deleted_at and not erase:
            raise NotFound(f"user {uid!r} was already deleted", {"uid": uid})
        groups = await self._groups.groups_of(uid)
        if erase and self._media is not None:
            # First: while the account exists, a failed erasure can be asked for again.
            await self._media.erase(uid)
        await self._store.delete_user(
            uid,
            self._clock.now(),
            erase=erase,
            audit=Audit(actor_label(actor), "user.erase" if erase else "user.delete", uid, {}),
        )
        self._users.forget(uid)
        self._blocks.forget_all()
        self._groups.forget_members(groups)
        self._users.disconnect(uid, "user deleted")

    async def export_user(self, uid: str) -> dict[str, Any]:
        """Everything stored about a user, decrypted (GDPR access); soft-deleted users too."""
        user = await self._users.stored_user(uid)
        blocked, _ = await self._blocks.blocks_of(uid)
        groups = []
        for guid in await self._groups.groups_of(uid):
            members = await self._groups.members(guid)
            groups.append({"guid": guid, "scope": members[uid].label if uid in members else None})
        messages = await self._messages.messages_of_sender(uid)
        return {
            "user": {**user.to_json(), "deletedAt": user.deleted_at},
            "messages": [m.to_json() for m in messages],
            "receipts": await self._messages.receipts_of(uid),
            "reactions": await self._reactions.reactions_by(uid) if self._reactions else [],
            "blockedUsers": sorted(blocked),
            "groups": groups,
            "media": await self._media.export(uid) if self._media is not None else [],
            "exportedAt": self._clock.now(),
        }
