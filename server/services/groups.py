"""Groups: creation, membership and scopes, kicks and bans, with their ``group.member`` frames.

Who may do what is decided in ``server/permissions.py`` (pure); this module reads the members
and the ban, asks there, writes through the store, updates the caches and tells the members.
"""

from __future__ import annotations

from typing import Any, Protocol

from server import permissions, protocol
from server.auth import Principal
from server.clock import Clock
from server.errors import Conflict, Forbidden, NotAMember, NotFound
from server.hub import Hub
from server.models import Group, Scope
from server.services.audit import actor_label
from server.services.cache import LRU, KeyedLocks
from server.services.contracts import EventSink
from server.services.users import UserService
from server.shared_state import NO_SHARING, Invalidator
from server.storage.ports import GroupRepository
from server.storage.types import Audit

GROUP_CACHE = 50_000


class GroupMeasures(Protocol):
    """Records the statement of reasons of a kick or a ban (``services/decisions.py``)."""

    async def for_group_measure(
        self, actor: Principal, guid: str, uid: str, measure: str, reason: str = ""
    ) -> None: ...


class GroupService:
    """Groups and their members; caches groups and member maps (bounded)."""

    def __init__(
        self,
        store: GroupRepository,
        users: UserService,
        hub: Hub,
        *,
        events: EventSink,
        clock: Clock,
        cache_size: int = GROUP_CACHE,
        measures: GroupMeasures | None = None,
        shared: Invalidator = NO_SHARING,
    ) -> None:
        self._store = store
        self._users = users
        self._hub = hub
        self._events = events
        self._clock = clock
        #: Records a kick's or a ban's statement of reasons (``services/decisions.py``).
        self._measures = measures
        # A member map is replaced, never mutated: readers may hold the old one.
        self._members: LRU[str, dict[str, Scope]] = LRU(cache_size)
        self._groups: LRU[str, Group] = LRU(cache_size)  # a group never changes once created
        # Membership changes of one group are serialised: each reads the cached members,
        # awaits the store, then writes the cache back.
        self._locks = KeyedLocks()
        self._shared = shared

    # ----------------------------------------------------------------- reads

    async def members(self, guid: str) -> dict[str, Scope]:
        """A group's members and their scopes (cached; empty for an unknown group)."""
        members = self._members.get(guid)
        if members is None:
            members = await self._store.members(guid)
            self._members.put(guid, members)
        return members

    async def group(self, guid: str) -> Group | None:
        group = self._groups.get(guid)
        if group is None:
            group = await self._store.get_group(guid)
            if group is None:
                return None
            self._groups.put(guid, group)
        return group

    async def require_group(self, guid: str) -> Group:
        group = self._groups.get(guid)  # the hot path: no second await on a hit
        if group is None:
            group = await self.group(guid)
            if group is None:
                raise NotFound(f"group {guid!r} not found", {"guid": guid})
        return group

    async def require_group_staff(self, actor: Principal, guid: str) -> None:
        """404 for an unknown group; 403 unless ``actor`` may moderate it
        (``permissions.may_moderate_group``)."""
        await self.require_group(guid)
        if not permissions.may_moderate_group(actor, await self.members(guid)):
            raise Forbidden("the group's moderators, admins and owner only", {"guid": guid})

    async def is_banned(self, guid: str, uid: str) -> bool:
        return await self._store.is_banned(guid, uid)

    async def groups_of(self, uid: str) -> list[str]:
        return await self._store.groups_of(uid)

    async def get_group(self, actor: Principal, guid: str) -> tuple[Group, dict[str, Scope]]:
        """The group and its members, as ``actor`` may see them."""
        group = await self.require_group(guid)
        members = await self.members(guid)
        if not permissions.may_read_group(actor, group.type, members):
            raise NotAMember("not a member of this private group", {"guid": guid})
        return group, members

    def forget_members(self, guids: list[str]) -> None:
        """Drop cached member maps (a user left all of these at once: account deletion)."""
        for guid in guids:
            self._members.pop(guid)
            self._shared.publish("members", guid)

    def invalidate(self, kind: str, key: str) -> None:
        """Another process changed group ``key``'s members, or any group's (``*``)."""
        if key == "*":
            self._members.clear()
            self._groups.clear()
        else:
            self._members.pop(key)
            self._groups.pop(key)

    # ----------------------------------------------------------------- writes

    async def create_group(
        self,
        actor: Principal,
        *,
        guid: str,
        name: str,
        type_: str,
        tags: tuple[str, ...],
        owner: str | None,
    ) -> Group:
        # A user token makes the caller owner; the API key names one, or none: the group then
        # has no user owner, and the API key and admins act as its owner (PROTOCOL.md).
        owner_uid = actor.uid if actor.uid is not None else owner
        if owner_uid is not None:
            await self._users.require_user(owner_uid)
        if await self._store.get_group(guid) is not None:
            raise Conflict(f"group {guid!r} already exists", {"guid": guid})
        now = self._clock.now()
        group = Group(guid, name, type_, tags, owner_uid, now, now)
        await self._store.create_group(
            group, Audit(actor_label(actor), "group.create", guid, {"owner": owner_uid})
        )
        self._members.pop(guid)
        self._shared.publish("members", guid)
        return group

    async def add_member(self, actor: Principal, guid: str, uid: str, scope: Scope) -> None:
        async with self._locks.hold(guid):
            group = await self.require_group(guid)
            await self._users.require_user(uid)
            members = await self.members(guid)
            if uid in members:
                raise Conflict(f"{uid!r} is already a member", {"uid": uid})
            banned = await self._store.is_banned(guid, uid)
            permissions.check_add_member(
                actor, members, uid, scope, guid=guid, group_type=group.type, banned=banned
            )
            members = await self._set_member(actor, guid, uid, scope, "group.join", members)
            if banned:  # an admin adding a banned user lifts the ban
                await self._store.unban(
                    guid, uid, Audit(actor_label(actor), "group.unban", guid, {"uid": uid})
                )
            self._group_event(guid, uid, "joined", actor, members, scope=scope)

    async def set_scope(self, actor: Principal, guid: str, uid: str, scope: Scope) -> None:
        async with self._locks.hold(guid):
            await self.require_group(guid)
            members = await self.members(guid)
            if uid not in members:
                raise NotFound(f"{uid!r} is not a member", {"uid": uid})
            permissions.check_set_scope(actor, members, uid, scope, guid=guid)
            members = await self._set_member(actor, guid, uid, scope, "group.scope", members)
            self._group_event(guid, uid, "scope_changed", actor, members, scope=scope)

    async def _set_member(
        self,
        actor: Principal,
        guid: str,
        uid: str,
        scope: Scope,
        action: str,
        members: dict[str, Scope],
    ) -> dict[str, Scope]:
        """Store ``uid``'s membership at ``scope`` (audited as ``action``); the new member map,
        which replaces the cached one."""
        await self._store.set_member(
            guid,
            uid,
            scope,
            self._clock.now(),
            Audit(actor_label(actor), action, guid, {"uid": uid, "scope": scope.label}),
        )
        members = {**members, uid: scope}
        self._members.put(guid, members)
        self._shared.publish("members", guid)
        return members

    async def remove_member(self, actor: Principal, guid: str, uid: str) -> None:
        """A member leaving (actor is the member) or being kicked (may rejoin a public group)."""
        async with self._locks.hold(guid):
            await self.require_group(guid)
            members = await self.members(guid)
            if uid not in members:
                raise NotFound(f"{uid!r} is not a member", {"uid": uid})
            leaving = permissions.is_self_join(actor, uid)
            if leaving:
                permissions.check_leave(members, uid, guid=guid)
            else:
                permissions.check_power_over(actor, members, uid)
            action = "left" if leaving else "kicked"
            await self._store.remove_member(
                guid, uid, Audit(actor_label(actor), f"group.{action}", guid, {"uid": uid})
            )
            self._members.put(guid, {k: v for k, v in members.items() if k != uid})
            self._shared.publish("members", guid)
            self._group_event(guid, uid, action, actor, members)
        if not leaving and self._measures is not None:
            await self._measures.for_group_measure(actor, guid, uid, "kick")

    async def ban(self, actor: Principal, guid: str, uid: str, reason: str) -> None:
        async with self._locks.hold(guid):
            await self.require_group(guid)
            await self._users.require_user(uid)
            members = await self.members(guid)
            permissions.check_power_over(actor, members, uid)
            await self._store.ban(
                guid,
                uid,
                reason,
                actor_label(actor),
                self._clock.now(),
                Audit(actor_label(actor), "group.ban", guid, {"uid": uid, "reason": reason}),
            )
            self._members.put(guid, {k: v for k, v in members.items() if k != uid})
            self._shared.publish("members", guid)
            self._group_event(guid, uid, "banned", actor, members, reason=reason)
        self._events.emit(
            "user.banned", {"uid": uid, "guid": guid, "reason": reason, "by": actor_label(actor)}
        )
        if self._measures is not None:
            await self._measures.for_group_measure(actor, guid, uid, "ban", reason)

    async def unban(self, actor: Principal, guid: str, uid: str) -> None:
        async with self._locks.hold(guid):
            await self.require_group(guid)
            members = await self.members(guid)
            permissions.check_unban(actor, members, guid=guid)
            if not await self._store.is_banned(guid, uid):
                raise NotFound(f"{uid!r} is not banned", {"uid": uid})
            await self._store.unban(
                guid, uid, Audit(actor_label(actor), "group.unban", guid, {"uid": uid})
            )
            self._group_event(guid, uid, "unbanned", actor, members)

    def _group_event(
        self,
        guid: str,
        uid: str,
        action: str,
        actor: Principal,
        audience: dict[str, Scope],
        *,
        scope: Scope | None = None,
        reason: str | None = None,
    ) -> None:
        body: dict[str, Any] = {
            "guid": guid,
            "uid": uid,
            "action": action,
            "by": actor_label(actor),
        }
        if scope is not None:
            body["scope"] = scope.label
        if reason:
            body["reason"] = reason
        self._hub.send({*audience, uid}, protocol.encode("group.member", body))
