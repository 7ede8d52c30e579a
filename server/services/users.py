"""Identity and users: authentication, the user cache, create/update, tokens.

Deleting, erasing and exporting an account touch blocks and groups too: they live one level
up, in ``accounts.py``.
"""

from __future__ import annotations

import dataclasses
import hmac
import uuid
from typing import Any

from server import protocol
from server.auth import Principal, Role, TokenAuthority, TokenClaims
from server.clock import Clock
from server.errors import AuthInvalid, Conflict, Forbidden, NotFound
from server.hub import Hub
from server.models import User
from server.services.audit import actor_label
from server.services.cache import LRU
from server.services.contracts import EventSink
from server.shared_state import NO_SHARING, Invalidator
from server.storage.ports import UserRepository
from server.storage.types import Audit

USER_CACHE = 100_000


class UserService:
    """Users and tokens; caches live users (bounded)."""

    def __init__(
        self,
        store: UserRepository,
        hub: Hub,
        tokens: TokenAuthority,
        *,
        events: EventSink,
        clock: Clock,
        cache_size: int = USER_CACHE,
        shared: Invalidator = NO_SHARING,
    ) -> None:
        self._store = store
        self._hub = hub
        self._tokens = tokens
        self._events = events
        self._clock = clock
        self._users: LRU[str, User] = LRU(cache_size)
        self._shared = shared

    async def user(self, uid: str) -> User | None:
        """A live (not deleted) user, cached."""
        user = self._users.get(uid)
        if user is None:
            user = await self._store.get_user(uid)
            if user is None or user.deleted_at:
                return None
            self._users.put(uid, user)
        return user

    async def require_user(self, uid: str) -> User:
        user = await self.user(uid)
        if user is None:
            raise NotFound(f"user {uid!r} not found", {"uid": uid})
        return user

    async def stored_user(self, uid: str) -> User:
        """A user, live or soft-deleted (erasure and export reach deleted accounts too)."""
        user = await self._store.get_user(uid)
        if user is None:
            raise NotFound(f"user {uid!r} not found", {"uid": uid})
        return user

    async def exists(self, uid: str) -> bool:
        """Whether the uid is taken (by a live or a soft-deleted user)."""
        return await self._store.get_user(uid) is not None

    def check_api_key(self, presented: str) -> bool:
        """Whether ``presented`` is the API key (constant time)."""
        return self._tokens.check_api_key(presented)

    async def authenticate(self, token: str) -> User:
        """The user behind a token. Raises AuthInvalid, or Forbidden for a deleted or banned user."""
        claims = self._tokens.verify(token)
        user = await self.user(claims.uid)
        if user is None:
            stored = await self._store.get_user(claims.uid)
            if stored is not None:
                raise Forbidden("user is deleted")
            raise AuthInvalid("unknown user")
        if not _token_fits_account(claims, user):
            raise AuthInvalid("token was issued to an earlier account with this uid")
        if user.banned:
            raise Forbidden("user is banned")
        return user

    @staticmethod
    def principal_for(user: User) -> Principal:
        return Principal(uid=user.uid, role=Role(user.role))

    async def create_user(
        self,
        actor: Principal,
        *,
        uid: str,
        name: str,
        role: str,
        tags: tuple[str, ...],
        metadata: dict[str, Any],
    ) -> User:
        if await self._store.get_user(uid) is not None:
            raise Conflict(f"user {uid!r} already exists", {"uid": uid})
        now = self._clock.now()
        user = User(uid, name, role, tags, metadata, now, now, account=uuid.uuid4().hex)
        await self._store.create_user(
            user, Audit(actor_label(actor), "user.create", uid, {"role": role})
        )
        self._users.put(uid, user)
        self._shared.publish("user", uid)
        return user

    async def update_user(self, actor: Principal, uid: str, changes: dict[str, Any]) -> User:
        user = await self.require_user(uid)
        updated = dataclasses.replace(user, **changes, updated_at=self._clock.now())
        details = {k: v for k, v in changes.items() if k in ("role", "banned")}
        await self._store.update_user(
            updated, Audit(actor_label(actor), "user.update", uid, details)
        )
        self._users.put(uid, updated)
        self._shared.publish("user", uid)
        if updated.banned and not user.banned:
            self.disconnect(uid, "user banned")
            self._events.emit("user.banned", {"uid": uid, "guid": None, "by": actor_label(actor)})
        return updated

    async def issue_token(self, uid: str, ttl: int | None) -> tuple[str, int]:
        user = await self.require_user(uid)
        return self._tokens.issue(uid, account=user.account, ttl=ttl)

    def forget(self, uid: str) -> None:
        """Drop ``uid`` from the cache (its account was deleted or erased)."""
        self._users.pop(uid)
        self._shared.publish("user", uid)

    def invalidate(self, kind: str, key: str) -> None:
        """Another process changed user ``key``, or any (``*``): ``server/shared_state.py``."""
        if key == "*":
            self._users.clear()
        else:
            self._users.pop(key)

    def disconnect(self, uid: str, reason: str) -> None:
        """Close every connection of ``uid`` (4403)."""
        for conn in self._hub.connections(uid):
            conn.close(protocol.CLOSE_FORBIDDEN, reason)


def _token_fits_account(claims: TokenClaims, user: User) -> bool:
    """Whether a token belongs to this incarnation of its uid: a token minted here names the
    account; one minted by the app's backend must not predate the account."""
    if claims.account is not None and user.account:
        return hmac.compare_digest(claims.account, user.account)
    return claims.issued_at >= user.created_at
