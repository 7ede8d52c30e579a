"""Who may do what in groups and to messages: pure functions over plain values.

Each ``check_*`` returns nothing or raises the client error the caller answers with; each
``may_*`` answers a question. No I/O: the services read the members, the ban and the message,
then ask here. Scopes are ordered by power (``Scope``); a member acts only on members strictly
below them. The API key and server admins act as a group's owner.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.auth import Principal, Role
from server.errors import BadRequest, Banned, Forbidden
from server.models import Message, Scope

Members = Mapping[str, Scope]


def acting_scope(actor: Principal, members: Members) -> Scope:
    """The scope ``actor`` acts with in a group: owner for the API key and server admins."""
    if actor.is_api_key or actor.role is Role.ADMIN:
        return Scope.OWNER
    return members.get(actor.uid or "", Scope.NONE)


def may_moderate_group(actor: Principal, members: Members) -> bool:
    """Server staff (and the API key), or the group's moderators, admins and owner: who reads
    a group's reports and its share of the audit log."""
    return actor.is_staff or acting_scope(actor, members) >= Scope.MODERATOR


def is_self_join(actor: Principal, uid: str) -> bool:
    return actor.uid == uid and not actor.is_api_key


def check_add_member(
    actor: Principal,
    members: Members,
    uid: str,
    scope: Scope,
    *,
    guid: str,
    group_type: str,
    banned: bool,
) -> None:
    """May ``actor`` add ``uid`` (not yet a member) at ``scope``?

    A user joins a public group themself, as a participant; everyone else is added by a
    member of scope admin or more, at a scope strictly below their own. A banned user can be
    added only by the API key or a server admin (which lifts the ban), never join themself.
    """
    if scope >= Scope.OWNER:
        raise BadRequest("scope must be admin, moderator or participant", {"field": "scope"})
    self_join = is_self_join(actor, uid)
    if banned and not (actor.is_admin and not self_join):
        raise Banned(f"{uid!r} is banned from this group", {"guid": guid, "uid": uid})
    if self_join:
        if group_type != "public" and actor.role is not Role.ADMIN:
            raise Forbidden("private groups are joined by invitation", {"guid": guid})
        if scope is not Scope.PARTICIPANT and actor.role is not Role.ADMIN:
            raise Forbidden("you may join only as a participant", {"guid": guid})
        return
    mine = acting_scope(actor, members)
    if mine < Scope.ADMIN or scope >= mine:
        raise Forbidden("your group scope does not allow this", {"guid": guid})


def check_set_scope(
    actor: Principal, members: Members, uid: str, scope: Scope, *, guid: str
) -> None:
    """May ``actor`` move member ``uid`` to ``scope``? Only an admin or more, only for a member
    strictly below them, and only to a scope strictly below theirs (never to owner)."""
    mine = acting_scope(actor, members)
    if scope >= Scope.OWNER or mine < Scope.ADMIN or members[uid] >= mine or scope >= mine:
        raise Forbidden("your group scope does not allow this", {"guid": guid})


def check_power_over(actor: Principal, members: Members, target: str) -> None:
    """May ``actor`` kick or ban ``target``? A moderator or more, over someone strictly below
    (the target need not be a member)."""
    mine = acting_scope(actor, members)
    if mine < Scope.MODERATOR or members.get(target, Scope.NONE) >= mine:
        raise Forbidden("your group scope does not allow this", {"uid": target})


def check_leave(members: Members, uid: str, *, guid: str) -> None:
    """May member ``uid`` leave? Everyone but the owner."""
    if members[uid] is Scope.OWNER:
        raise Forbidden("the owner cannot leave the group", {"guid": guid})


def check_unban(actor: Principal, members: Members, *, guid: str) -> None:
    """May ``actor`` lift a ban? A moderator or more."""
    if acting_scope(actor, members) < Scope.MODERATOR:
        raise Forbidden("your group scope does not allow this", {"guid": guid})


def may_read_group(actor: Principal, group_type: str, members: Members) -> bool:
    """Staff read any group; others a public group, or a private one they belong to."""
    return group_type != "private" or actor.is_staff or (actor.uid or "") in members


def may_delete_message(actor: Principal, message: Message, members: Members) -> bool:
    """The sender, staff, or in a group a member of scope moderator or more.

    ``members`` are the group's members (empty for a 1:1 message).
    """
    if message.sender == actor.uid or actor.is_staff:
        return True
    if message.receiver_type != "group" or actor.uid is None:
        return False
    return members.get(actor.uid, Scope.NONE) >= Scope.MODERATOR


def may_view_message(uid: str, message: Message, members: Members) -> bool:
    """Whether user ``uid`` may see ``message``: its sender always; others only once it is
    deliverable, as its receiver or a member of its group (``members``)."""
    if message.sender == uid:
        return True
    if not message.status.deliverable:
        return False
    if message.receiver_type == "user":
        return message.receiver == uid
    return uid in members
