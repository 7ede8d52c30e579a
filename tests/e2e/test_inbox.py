"""The inbox (GET /me/conversations) and the user directory (GET /users?search=), end to end
on a real server: order, visibility of held messages, unread counts, paging, colliding
conversation ids, the directory's scope."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from client.sdk import RestClient, ServerError
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.test_moderation_flow import word_rule


async def inbox_of(world: World, uid: str, **kw: Any) -> list[dict[str, Any]]:
    async with world.user_rest(await world.token(uid)) as r:
        return list((await r.conversations(**kw))["conversations"])


def by_peer(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["with"]: c for c in items}


async def test_newest_first_with_groups_unread_counts_and_read_receipts(world: World) -> None:
    alice, bob, carol = await world.user("alice"), await world.user("bob"), await world.user("c")
    guid, empty = unique("g"), unique("g")
    await world.rest.create_group(guid, "G", owner=carol)
    await world.rest.add_member(guid, alice)
    await world.rest.create_group(empty, "Empty", owner=alice)  # joined, no message yet
    a, b, c = await world.connect(alice), await world.connect(bob), await world.connect(carol)
    await a.send_custom(bob, "n", {"i": 1})
    await c.send_custom(alice, "n", {"i": 2})
    in_group = await c.send_custom(guid, "n", {"i": 3}, receiver_type="group")

    items = await inbox_of(world, alice)
    # Newest first by time, then message id; a group without a message sorts by its join
    # time (at or before the messages here; in the same second it sorts below them).
    assert [i["with"] for i in items] == [guid, carol, bob, empty]
    assert [i["conversationType"] for i in items] == ["group", "user", "user", "group"]
    peers = by_peer(items)
    assert peers[empty]["lastMessage"] is None and peers[empty]["unreadCount"] == 0
    assert peers[empty]["conversationId"] == f"group_{empty}"
    assert peers[guid]["lastMessage"]["id"] == in_group["id"]
    assert peers[guid]["unreadCount"] == 1
    assert peers[guid]["updatedAt"] == in_group["sentAt"]
    assert peers[carol]["unreadCount"] == 1
    assert peers[bob]["unreadCount"] == 0  # only alice wrote
    assert peers[bob]["conversationId"] == "_user_".join(sorted((alice, bob)))

    # bob writes twice: his conversation goes to the top with two unread
    first = await b.send_custom(alice, "n", {"i": 4})
    second = await b.send_custom(alice, "n", {"i": 5})
    items = await inbox_of(world, alice)
    assert items[0]["with"] == bob and items[0]["lastMessage"]["id"] == second["id"]
    assert items[0]["unreadCount"] == 2
    # a read receipt on message N marks everything up to N read
    await a.receipt(first["id"], "read")
    await a.ping()
    assert by_peer(await inbox_of(world, alice))[bob]["unreadCount"] == 1
    await a.receipt(second["id"], "delivered")  # not a read
    await a.receipt(second["id"], "read")
    await a.receipt(in_group["id"], "read")
    await a.ping()
    peers = by_peer(await inbox_of(world, alice))
    assert peers[bob]["unreadCount"] == 0 and peers[guid]["unreadCount"] == 0
    assert peers[carol]["unreadCount"] == 1  # another conversation: untouched
    # bob's own inbox: alice's one message is unread, his own two never are
    assert by_peer(await inbox_of(world, bob))[alice]["unreadCount"] == 1


async def test_held_and_blocked_messages_never_reach_the_receivers_inbox(world: World) -> None:
    word = unique("inboxhold")
    await word_rule(world, word, ["review"])
    alice, bob, dave = await world.user("alice"), await world.user("bob"), await world.user("d")
    a = await world.connect(alice)
    d = await world.connect(dave)
    ok = await a.send_custom(bob, "n", {"ok": True})
    held = await a.send_text(bob, f"look {word}")
    assert held["moderationStatus"] == "pending"
    blocked = await a.send_text(bob, "you are a f.u.c.k.i.n.g idiot")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == blocked["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"
    only_held = await d.send_text(bob, f"{word} from dave")  # bob sees nothing of dave yet

    bob_view = by_peer(await inbox_of(world, bob))
    assert bob_view[alice]["lastMessage"]["id"] == ok["id"]
    assert bob_view[alice]["unreadCount"] == 1
    assert dave not in bob_view
    # the sender sees their own held and blocked messages, as history shows them
    alice_view = by_peer(await inbox_of(world, alice))
    assert alice_view[bob]["lastMessage"]["id"] == blocked["id"]
    assert alice_view[bob]["lastMessage"]["moderationStatus"] == "disapproved"
    dave_view = by_peer(await inbox_of(world, dave))
    assert dave_view[bob]["lastMessage"]["moderationStatus"] == "pending"

    moderator = await world.user("mod", role="moderator")
    async with world.user_rest(await world.token(moderator)) as rm:
        await rm.approve(held["id"])
        await rm.approve(only_held["id"])
    bob_view = by_peer(await inbox_of(world, bob))
    assert bob_view[alice]["lastMessage"]["id"] == held["id"]
    assert bob_view[alice]["unreadCount"] == 2
    assert bob_view[dave]["lastMessage"]["id"] == only_held["id"]
    # an approved message edited back into review leaves the receiver's inbox again
    edited = await a.edit(held["id"], f"again {word}")
    assert edited["moderationStatus"] == "pending"
    bob_view = by_peer(await inbox_of(world, bob))
    assert bob_view[alice]["lastMessage"]["id"] == ok["id"]
    assert bob_view[alice]["unreadCount"] == 1


async def test_deleted_messages_are_tombstones_and_blocked_users_stay_listed(
    world: World,
) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    sent = await a.send_custom(bob, "n", {"x": 1})
    await a.delete(sent["id"])
    async with world.user_rest(await world.token(bob)) as rb:
        await rb.block(alice)
        view = by_peer((await rb.conversations())["conversations"])
    last = view[alice]["lastMessage"]
    assert last["id"] == sent["id"] and last["deletedAt"] > 0 and last["data"] is None
    assert view[alice]["unreadCount"] == 0  # a deleted message is not unread


async def test_colliding_conversation_ids_stay_apart(world: World) -> None:
    h = uuid.uuid4().hex[:8]
    # a + b_user_c and a_user_b + c share the wire id "a_user_b_user_c"
    a, b_user_c, a_user_b, c = f"a{h}", f"b{h}_user_c{h}", f"a{h}_user_b{h}", f"c{h}"
    for uid in (a, b_user_c, a_user_b, c):
        await world.rest.create_user(uid, uid)
    ca, cab = await world.connect(a), await world.connect(a_user_b)
    one = await ca.send_custom(b_user_c, "n", {"pair": 1})
    two = await cab.send_custom(c, "n", {"pair": 2})
    assert one["conversationId"] == two["conversationId"] == f"a{h}_user_b{h}_user_c{h}"
    for uid, peer, message in (
        (a, b_user_c, one),
        (b_user_c, a, one),
        (a_user_b, c, two),
        (c, a_user_b, two),
    ):
        items = await inbox_of(world, uid)
        assert [i["with"] for i in items] == [peer]
        assert items[0]["lastMessage"]["id"] == message["id"]
        assert items[0]["conversationId"] == one["conversationId"]
        assert items[0]["unreadCount"] == (0 if message["sender"] == uid else 1)


async def test_paging_walks_every_conversation_once(world: World) -> None:
    me = await world.user("me")
    peers = [await world.user("p") for _ in range(5)]
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=me)
    client = await world.connect(me)
    for peer in peers:
        await client.send_custom(peer, "n", {})
    whole = await inbox_of(world, me, limit=100)
    assert len(whole) == 6
    async with world.user_rest(await world.token(me)) as r:
        seen: list[dict[str, Any]] = []
        before = None
        while True:
            page = await r.conversations(limit=2, before=before)
            assert len(page["conversations"]) <= 2
            seen += page["conversations"]
            before = page["next"]
            if before is None:
                break
    assert [c["conversationId"] for c in seen] == [c["conversationId"] for c in whole]
    # the group was joined before the first message: it sorts last
    assert [c["with"] for c in whole] == [*peers[::-1], guid]


async def test_inbox_validation(world: World) -> None:
    uid = await world.user("v")
    async with world.user_rest(await world.token(uid)) as r:
        for params in (
            {"limit": 0},
            {"limit": 101},
            {"limit": "x"},
            {"before": "not-a-cursor!"},
            {"before": "Zm9v"},  # "foo"
        ):
            with pytest.raises(ServerError) as info:
                await r.request("GET", "/me/conversations", params=params)
            assert info.value.status == 400 and info.value.code == "ERR_BAD_REQUEST"
        for params in ({"limit": 0}, {"limit": 101}, {"search": "x" * 101}, {"cursor": "a b"}):
            with pytest.raises(ServerError) as info:
                await r.request("GET", "/users", params=params)
            assert info.value.status == 400
    with pytest.raises(ServerError) as info:
        await world.rest.conversations()  # the API key has no inbox
    assert info.value.status == 403
    r2 = httpx.get(world.server.url + "/api/v1/me/conversations")
    assert r2.status_code == 401


async def test_directory_default_scope_is_shared_groups(world: World) -> None:
    tag = uuid.uuid4().hex[:8]
    alice, bob, carol, gone = (
        f"dir{tag}-alice",
        f"dir{tag}-bob",
        f"dir{tag}-carol",
        f"dir{tag}-gone",
    )
    await world.rest.create_user(alice, "Alice")
    await world.rest.create_user(bob, f"Zed{tag} Bobson")
    await world.rest.create_user(carol, f"Zed{tag} Carol")
    await world.rest.create_user(gone, "Gone")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=alice)
    for uid in (bob, gone):
        await world.rest.add_member(guid, uid)
    async with world.user_rest(await world.token(alice)) as r:
        found = await r.search_users(f"DIR{tag}")  # case-insensitive uid prefix
        assert [u["uid"] for u in found["users"]] == [bob, gone]  # not carol, not alice
        assert set(found["users"][0]) == {"uid", "name", "role", "createdAt"}
        by_name = await r.search_users(f"zED{tag} b")  # name prefix
        assert [u["uid"] for u in by_name["users"]] == [bob]
        assert (await r.search_users(f"zed{tag} c"))["users"] == []
    await world.rest.delete_user(gone)
    # staff and the API key search everyone; deleted users never
    moderator = await world.user("mod", role="moderator")
    async with world.user_rest(await world.token(moderator)) as rm:
        staff = await rm.search_users(f"dir{tag}")
    assert [u["uid"] for u in staff["users"]] == [alice, bob, carol]
    assert "metadata" in staff["users"][0]
    listed: list[str] = []
    cursor = None
    while True:
        page = await world.rest.search_users(f"dir{tag}", limit=2, cursor=cursor)
        listed += [u["uid"] for u in page["users"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert listed == [alice, bob, carol]


async def test_directory_scope_all(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--rate-limit", "0", "--directory-scope", "all")  # type: ignore[call-arg]
    async with world_on(srv) as world:
        tag = uuid.uuid4().hex[:8]
        me, other = f"all{tag}-me", f"all{tag}-other"
        await world.rest.create_user(me, "Me")
        await world.rest.create_user(other, "Other")
        async with RestClient(srv.url, token=await world.token(me)) as r:
            found = await r.search_users(f"all{tag}")
        assert [u["uid"] for u in found["users"]] == [other]


async def test_held_group_message_shows_only_to_its_sender(world: World) -> None:
    word = unique("inboxgroup")
    await word_rule(world, word, ["review"])
    alice, bob = await world.user("alice"), await world.user("bob")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=alice)
    await world.rest.add_member(guid, bob)
    a = await world.connect(alice)
    shown = await a.send_text(guid, "a plain hello", receiver_type="group")
    await a.next_event("message.moderated", predicate=lambda e: e.message["id"] == shown["id"])
    held = await a.send_text(guid, f"hold {word}", receiver_type="group")
    assert by_peer(await inbox_of(world, bob))[guid]["lastMessage"]["id"] == shown["id"]
    assert by_peer(await inbox_of(world, bob))[guid]["unreadCount"] == 1
    mine = by_peer(await inbox_of(world, alice))[guid]
    assert mine["lastMessage"]["id"] == held["id"] and mine["unreadCount"] == 0
    moderator = await world.user("mod", role="moderator")
    async with world.user_rest(await world.token(moderator)) as rm:
        await rm.approve(held["id"])
    theirs = by_peer(await inbox_of(world, bob))[guid]
    assert theirs["lastMessage"]["id"] == held["id"] and theirs["unreadCount"] == 2
    # edited back into review: gone from bob's inbox, still alice's last message
    await a.edit(shown["id"], f"now {word}")
    await a.edit(held["id"], f"again {word}")
    assert by_peer(await inbox_of(world, bob))[guid]["lastMessage"] is None
    assert by_peer(await inbox_of(world, alice))[guid]["lastMessage"]["id"] == held["id"]


async def test_shadow_banned_messages_stay_out_of_other_inboxes(world: World) -> None:
    spammer, bob, carol = await world.user("spam"), await world.user("bob"), await world.user("c")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=carol)
    for uid in (spammer, bob):
        await world.rest.add_member(guid, uid)
    s, c = await world.connect(spammer), await world.connect(carol)
    before = await c.send_custom(guid, "n", {"i": 0}, receiver_type="group")
    ban = await world.rest.restrict(spammer, "shadow_ban", reason="bot")
    direct = await s.send_custom(bob, "n", {"buy": 1})
    in_group = await s.send_custom(guid, "n", {"buy": 2}, receiver_type="group")
    bob_view = by_peer(await inbox_of(world, bob))
    assert spammer not in bob_view  # nothing of theirs to see: no conversation at all
    assert bob_view[guid]["lastMessage"]["id"] == before["id"]
    assert bob_view[guid]["unreadCount"] == 1  # carol's; never the hidden one
    spam_view = by_peer(await inbox_of(world, spammer))
    assert spam_view[bob]["lastMessage"]["id"] == direct["id"]
    assert spam_view[guid]["lastMessage"]["id"] == in_group["id"]
    # lifted: new messages show, those sent under the ban stay hidden
    await world.rest.lift_restriction(spammer, ban["restrictionId"])
    await asyncio.sleep(1.1)  # whole seconds: the second of the lifting still hides
    after = await s.send_custom(bob, "n", {"hello": 1})
    bob_view = by_peer(await inbox_of(world, bob))
    assert bob_view[spammer]["lastMessage"]["id"] == after["id"]
    assert bob_view[spammer]["unreadCount"] == 1
