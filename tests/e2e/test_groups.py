"""Groups: scopes, joining, kick, ban/unban, and the group.member frames."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from client.sdk import RestClient, ServerError
from tests.conftest import ServerProcess, World, unique


async def make_group(world: World, *, type_: str = "public") -> tuple[str, str, str, str, str]:
    owner, admin, mod, part = [await world.user(p) for p in ("own", "adm", "mod", "par")]
    guid = unique("g")
    async with world.user_rest(await world.token(owner)) as o:
        created = await o.create_group(guid, "G", type=type_)
        assert created["owner"] == owner
        await o.add_member(guid, admin, scope="admin")
    async with world.user_rest(await world.token(admin)) as a:
        await a.add_member(guid, mod, scope="moderator")
        await a.add_member(guid, part)
    return guid, owner, admin, mod, part


async def expect_error(code: str, coro: object) -> None:
    with pytest.raises(ServerError) as info:
        await coro  # type: ignore[misc]
    assert info.value.code == code, info.value


async def test_scopes_decide_who_may_kick(world: World) -> None:
    guid, owner, admin, mod, part = await make_group(world)
    group = await world.rest.get_group(guid)
    assert {m["uid"]: m["scope"] for m in group["members"]} == {
        owner: "owner",
        admin: "admin",
        mod: "moderator",
        part: "participant",
    }
    async with world.user_rest(await world.token(part)) as p:
        await expect_error("ERR_FORBIDDEN", p.kick(guid, mod))
    async with world.user_rest(await world.token(mod)) as m:
        await expect_error("ERR_FORBIDDEN", m.kick(guid, admin))
        await expect_error("ERR_FORBIDDEN", m.set_scope(guid, part, "admin"))
    watcher = await world.connect(part)
    async with world.user_rest(await world.token(admin)) as a:
        await expect_error("ERR_FORBIDDEN", a.kick(guid, owner))
        await a.kick(guid, mod)
    ev = await watcher.next_event("group.member")
    assert (ev.data["guid"], ev.data["uid"], ev.data["action"], ev.data["by"]) == (
        guid,
        mod,
        "kicked",
        admin,
    )


async def test_kicked_member_may_rejoin_public_group_but_banned_may_not(world: World) -> None:
    guid, owner, admin, mod, part = await make_group(world)
    victim = await world.connect(part)
    async with world.user_rest(await world.token(mod)) as m:
        await m.kick(guid, part)
    ev = await victim.next_event("group.member", predicate=lambda e: e.data["action"] == "kicked")
    assert ev.data["uid"] == part
    async with world.user_rest(await world.token(part)) as p:
        await p.add_member(guid, part)  # self-join a public group
        async with world.user_rest(await world.token(mod)) as m:
            await m.ban(guid, part, reason="spam")
        ev = await victim.next_event(
            "group.member", predicate=lambda e: e.data["action"] == "banned"
        )
        assert ev.data["by"] == mod
        await expect_error("ERR_BANNED", p.add_member(guid, part))
        await expect_error(
            "ERR_BANNED", victim.send_text(guid, "still here?", receiver_type="group")
        )
        async with world.user_rest(await world.token(admin)) as a:
            await a.unban(guid, part)
        ev = await victim.next_event(
            "group.member", predicate=lambda e: e.data["action"] == "unbanned"
        )
        await p.add_member(guid, part)
    sent = await victim.send_custom(guid, "n", {}, receiver_type="group")
    assert sent["receiver"] == guid


async def test_private_group_needs_an_invitation(world: World) -> None:
    guid, owner, admin, mod, part = await make_group(world, type_="private")
    outsider = await world.user("out")
    async with world.user_rest(await world.token(outsider)) as o:
        await expect_error("ERR_FORBIDDEN", o.add_member(guid, outsider))
        await expect_error("ERR_NOT_A_MEMBER", o.get_group(guid))
    async with world.user_rest(await world.token(part)) as p:
        await expect_error("ERR_FORBIDDEN", p.add_member(guid, outsider))
    async with world.user_rest(await world.token(admin)) as a:
        await a.add_member(guid, outsider)


async def test_scope_change_and_leave(world: World) -> None:
    guid, owner, admin, mod, part = await make_group(world)
    c = await world.connect(part)
    async with world.user_rest(await world.token(owner)) as o:
        await o.set_scope(guid, part, "moderator")
    ev = await c.next_event("group.member", predicate=lambda e: e.data["action"] == "scope_changed")
    assert ev.data["scope"] == "moderator"
    async with world.user_rest(await world.token(part)) as p:
        await p.kick(guid, part)  # DELETE on yourself is leaving
    ev = await c.next_event("group.member", predicate=lambda e: e.data["action"] == "left")
    assert ev.data["uid"] == part
    async with world.user_rest(await world.token(owner)) as o:
        await expect_error("ERR_FORBIDDEN", o.kick(guid, owner))


async def test_api_key_and_unknown_group(world: World) -> None:
    await expect_error("ERR_NOT_FOUND", world.rest.get_group(unique("none")))
    async with RestClient(world.server.url) as anon:
        await expect_error("ERR_AUTH_REQUIRED", anon.get_group("x"))


async def test_concurrent_adds_all_become_receivers(world: World) -> None:
    owner = await world.user("own")
    members = [await world.user("m") for _ in range(10)]
    guid = unique("g")
    await world.rest.create_group(guid, "Busy", owner=owner)
    await asyncio.gather(*(world.rest.add_member(guid, uid) for uid in members))
    assert len((await world.rest.get_group(guid))["members"]) == 11
    clients = [await world.connect(uid) for uid in members]
    o = await world.connect(owner)
    sent = await o.send_custom(guid, "n", {}, receiver_type="group")
    for c in clients:
        got = await c.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
        assert got.message["conversationId"] == f"group_{guid}"


async def test_the_api_key_creates_a_group_with_no_user_owner(world: World) -> None:
    guid = unique("ownerless")
    created = await world.rest.create_group(guid, "Ownerless")
    assert created["owner"] is None
    member = await world.user()
    await world.rest.add_member(guid, member, scope="admin")  # the API key acts as owner
    group = await world.rest.get_group(guid)
    assert group["members"] == [{"uid": member, "scope": "admin"}]


def test_a_wrong_method_answers_405(server: ServerProcess) -> None:
    response = httpx.delete(server.url + "/api/v1/messages", headers={"X-API-Key": server.api_key})
    assert response.status_code == 405
    assert response.json()["code"] == "ERR_BAD_REQUEST"
    assert "POST" in response.headers["allow"]
