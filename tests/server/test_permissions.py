"""Group and message permissions, as pure functions: table-driven, no server."""

from __future__ import annotations

import pytest

from server import permissions
from server.auth import API_KEY_PRINCIPAL, Principal, Role
from server.errors import BadRequest, Banned, ClientError, Forbidden
from server.models import Message, Scope, Status

OWNER, ADMIN, MOD, PART = Scope.OWNER, Scope.ADMIN, Scope.MODERATOR, Scope.PARTICIPANT
MEMBERS = {"own": OWNER, "adm": ADMIN, "mod": MOD, "par": PART}


def user(uid: str, role: Role = Role.USER) -> Principal:
    return Principal(uid=uid, role=role)


@pytest.mark.parametrize(
    ("actor", "scope"),
    [
        (API_KEY_PRINCIPAL, OWNER),
        (user("root", Role.ADMIN), OWNER),
        (user("own"), OWNER),
        (user("mod", Role.MODERATOR), MOD),  # a server moderator has only their group scope
        (user("stranger"), Scope.NONE),
    ],
)
def test_acting_scope(actor: Principal, scope: Scope) -> None:
    assert permissions.acting_scope(actor, MEMBERS) is scope


ADD_CASES = [
    # actor, uid, scope, group type, banned, expected error (None: allowed)
    (user("new"), "new", PART, "public", False, None),
    (user("new"), "new", MOD, "public", False, Forbidden),
    (user("new"), "new", PART, "private", False, Forbidden),
    (user("new"), "new", PART, "public", True, Banned),
    (user("root", Role.ADMIN), "root", MOD, "private", False, None),
    (user("adm"), "x", MOD, "private", False, None),
    (user("adm"), "x", ADMIN, "public", False, Forbidden),  # only below one's own scope
    (user("own"), "x", ADMIN, "public", False, None),
    (user("mod"), "x", PART, "public", False, Forbidden),
    (user("adm"), "x", PART, "public", True, Banned),  # a group admin cannot lift a ban
    (API_KEY_PRINCIPAL, "x", PART, "public", True, None),  # the API key can
    (API_KEY_PRINCIPAL, "x", OWNER, "public", False, BadRequest),
]


@pytest.mark.parametrize(("actor", "uid", "scope", "kind", "banned", "error"), ADD_CASES)
def test_check_add_member(
    actor: Principal,
    uid: str,
    scope: Scope,
    kind: str,
    banned: bool,
    error: type[ClientError] | None,
) -> None:
    def call() -> None:
        permissions.check_add_member(
            actor, MEMBERS, uid, scope, guid="g", group_type=kind, banned=banned
        )

    if error is None:
        call()
    else:
        with pytest.raises(error):
            call()


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (user("mod"), "par", True),
        (user("mod"), "mod", False),
        (user("mod"), "adm", False),
        (user("par"), "outsider", False),
        (user("adm"), "outsider", True),  # a ban need not target a member
        (user("adm"), "own", False),
        (API_KEY_PRINCIPAL, "adm", True),
        (API_KEY_PRINCIPAL, "own", False),  # nobody acts on the owner
    ],
)
def test_check_power_over(actor: Principal, target: str, allowed: bool) -> None:
    if allowed:
        permissions.check_power_over(actor, MEMBERS, target)
    else:
        with pytest.raises(Forbidden):
            permissions.check_power_over(actor, MEMBERS, target)


@pytest.mark.parametrize(
    ("actor", "uid", "scope", "allowed"),
    [
        (user("own"), "adm", MOD, True),
        (user("own"), "par", ADMIN, True),
        (user("adm"), "par", MOD, True),
        (user("adm"), "par", ADMIN, False),
        (user("adm"), "mod", PART, True),
        (user("mod"), "par", MOD, False),
        (API_KEY_PRINCIPAL, "own", ADMIN, False),
        (API_KEY_PRINCIPAL, "adm", OWNER, False),
    ],
)
def test_check_set_scope(actor: Principal, uid: str, scope: Scope, allowed: bool) -> None:
    if allowed:
        permissions.check_set_scope(actor, MEMBERS, uid, scope, guid="g")
    else:
        with pytest.raises(Forbidden):
            permissions.check_set_scope(actor, MEMBERS, uid, scope, guid="g")


def test_the_owner_cannot_leave_and_others_can() -> None:
    permissions.check_leave(MEMBERS, "adm", guid="g")
    with pytest.raises(Forbidden):
        permissions.check_leave(MEMBERS, "own", guid="g")


def message(sender: str, receiver: str, receiver_type: str, status: Status) -> Message:
    return Message(
        id=1,
        muid="m",
        conversation_id="c",
        sender=sender,
        receiver=receiver,
        receiver_type=receiver_type,
        category="message",
        type="text",
        text="t",
        data=None,
        metadata={},
        tags=(),
        parent_id=None,
        sent_at=0,
        updated_at=0,
        status=status,
    )


@pytest.mark.parametrize(
    ("viewer", "msg", "members", "allowed"),
    [
        ("a", message("a", "b", "user", Status.PENDING), {}, True),
        ("b", message("a", "b", "user", Status.PENDING), {}, False),
        ("b", message("a", "b", "user", Status.APPROVED), {}, True),
        ("c", message("a", "b", "user", Status.APPROVED), {}, False),
        ("m", message("a", "g", "group", Status.UNMODERATED), {"m": PART}, True),
        ("x", message("a", "g", "group", Status.UNMODERATED), {"m": PART}, False),
        ("m", message("a", "g", "group", Status.DISAPPROVED), {"m": PART}, False),
    ],
)
def test_may_view_message(
    viewer: str, msg: Message, members: dict[str, Scope], allowed: bool
) -> None:
    assert permissions.may_view_message(viewer, msg, members) is allowed


@pytest.mark.parametrize(
    ("actor", "msg", "members", "allowed"),
    [
        (user("a"), message("a", "b", "user", Status.APPROVED), {}, True),
        (user("b"), message("a", "b", "user", Status.APPROVED), {}, False),
        (user("s", Role.MODERATOR), message("a", "b", "user", Status.APPROVED), {}, True),
        (user("m"), message("a", "g", "group", Status.APPROVED), {"m": MOD}, True),
        (user("p"), message("a", "g", "group", Status.APPROVED), {"p": PART}, False),
        (API_KEY_PRINCIPAL, message("a", "g", "group", Status.APPROVED), {}, True),
    ],
)
def test_may_delete_message(
    actor: Principal, msg: Message, members: dict[str, Scope], allowed: bool
) -> None:
    assert permissions.may_delete_message(actor, msg, members) is allowed


@pytest.mark.parametrize(
    ("actor", "allowed"),
    [
        (API_KEY_PRINCIPAL, True),
        (user("stranger", Role.MODERATOR), True),  # server staff, not in the group
        (user("own"), True),
        (user("adm"), True),
        (user("mod"), True),
        (user("par"), False),
        (user("stranger"), False),
    ],
)
def test_may_moderate_group(actor: Principal, allowed: bool) -> None:
    assert permissions.may_moderate_group(actor, MEMBERS) is allowed
