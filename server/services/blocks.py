"""Blocks between users: who blocked whom, cached per user (bounded)."""

from __future__ import annotations

from server.clock import Clock
from server.errors import BadRequest
from server.services.cache import LRU
from server.services.users import UserService
from server.shared_state import NO_SHARING, Invalidator
from server.storage.ports import BlockRepository

BLOCK_CACHE = 100_000


class BlockService:
    """Adds and removes blocks; answers whether a block stands between two users."""

    def __init__(
        self,
        store: BlockRepository,
        users: UserService,
        *,
        clock: Clock,
        cache_size: int = BLOCK_CACHE,
        shared: Invalidator = NO_SHARING,
    ) -> None:
        self._store = store
        self._users = users
        self._clock = clock
        self._blocks: LRU[str, tuple[set[str], set[str]]] = LRU(cache_size)
        self._shared = shared

    async def blocks_of(self, uid: str) -> tuple[set[str], set[str]]:
        """(users ``uid`` blocked, users who blocked ``uid``); never mutate them."""
        cached = self._blocks.get(uid)
        if cached is None:
            cached = await self._store.blocks_of(uid)
            self._blocks.put(uid, cached)
        return cached

    async def is_blocked_between(self, a: str, b: str) -> bool:
        blocked, blocked_by = await self.blocks_of(a)
        return b in blocked or b in blocked_by

    async def blocked_users(self, uid: str) -> list[str]:
        blocked, _ = await self.blocks_of(uid)
        return sorted(blocked)

    async def block(self, uid: str, uids: list[str]) -> list[str]:
        for other in uids:
            if other == uid:
                raise BadRequest("cannot block yourself", {"uid": other})
            await self._users.require_user(other)
        await self._store.add_blocks(uid, uids, self._clock.now())
        for who in (uid, *uids):
            self._blocks.pop(who)
            self._shared.publish("blocks", who)
        return await self.blocked_users(uid)

    async def unblock(self, uid: str, other: str) -> list[str]:
        await self._store.remove_block(uid, other)
        for who in (uid, other):
            self._blocks.pop(who)
            self._shared.publish("blocks", who)
        return await self.blocked_users(uid)

    def forget_all(self) -> None:
        """Drop every cached entry (an account was erased: others' sets named it)."""
        self._blocks.clear()
        self._shared.publish("blocks", "*")

    def invalidate(self, kind: str, key: str) -> None:
        """Another process changed ``key``'s blocks, or everybody's (``*``)."""
        if key == "*":
            self._blocks.clear()
        else:
            self._blocks.pop(key)
