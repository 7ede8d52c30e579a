"""1:1 and group messaging end to end over real WebSockets."""

from __future__ import annotations

import asyncio

import pytest

from client.sdk import ServerError
from tests.conftest import World, unique


def conv(a: str, b: str) -> str:
    x, y = sorted((a, b))
    return f"{x}_user_{y}"


async def test_one_to_one_text_is_moderated_then_delivered(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "hello bob")
    assert sent["moderationStatus"] == "pending"
    assert sent["conversationId"] == conv(alice, bob)
    assert (sent["sender"], sent["receiver"], sent["type"], sent["text"]) == (
        alice,
        bob,
        "text",
        "hello bob",
    )
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == sent["id"]
    assert verdict.message["moderationStatus"] == "approved"
    got = await b.next_event("message")
    assert got.message["id"] == sent["id"]
    assert got.message["text"] == "hello bob"
    assert got.message["moderationStatus"] == "approved"


async def test_custom_message_is_unmoderated_and_immediate(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "location", {"lat": 1.5, "lon": 2.5})
    assert sent["moderationStatus"] == "unmoderated"
    got = await b.next_event("message")
    assert got.message["data"] == {"lat": 1.5, "lon": 2.5}
    assert got.message["category"] == "custom" and got.message["type"] == "location"
    await a.expect_no_event("message.moderated", within=0.3)


async def test_every_connection_of_both_users_gets_the_message(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    phone, laptop = await world.connect(alice), await world.connect(alice)
    b1, b2 = await world.connect(bob), await world.connect(bob)
    sent = await phone.send_custom(bob, "ping", {"n": 1})
    other = await laptop.next_event("message")
    assert other.message["id"] == sent["id"]
    for c in (b1, b2):
        assert (await c.next_event("message")).message["id"] == sent["id"]
    await phone.expect_no_event("message", within=0.2)


async def test_idempotent_send_on_muid(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    first = await a.send_custom(bob, "x", {"v": 1}, muid="same-muid")
    again = await a.send_custom(bob, "x", {"v": 1}, muid="same-muid")
    assert again["id"] == first["id"]
    await b.next_event("message")
    await b.expect_no_event("message", within=0.3)
    history = await world.rest.history(conv(alice, bob))
    assert [m["id"] for m in history] == [first["id"]]


async def test_history_pagination_and_visibility(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    ids = [(await a.send_custom(bob, "n", {"i": i}))["id"] for i in range(7)]
    rest_b = world.user_rest(await world.token(bob))
    async with rest_b:
        page1 = await rest_b.history(conv(alice, bob), limit=3)
        assert [m["id"] for m in page1] == ids[-3:]
        page2 = await rest_b.history(conv(alice, bob), before=page1[0]["id"], limit=3)
        assert [m["id"] for m in page2] == ids[-6:-3]
        page3 = await rest_b.history(conv(alice, bob), before=page2[0]["id"], limit=3)
        assert [m["id"] for m in page3] == ids[:1]
    stranger = await world.user("eve")
    async with world.user_rest(await world.token(stranger)) as rest_e:
        with pytest.raises(ServerError) as info:
            await rest_e.history(conv(alice, bob))
        assert info.value.code == "ERR_FORBIDDEN"


async def test_edit_and_delete_reach_the_receiver(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "first version")
    await b.next_event("message")
    edited = await a.edit(sent["id"], "second version")
    assert edited["text"] == "second version" and edited["editedAt"] > 0
    assert edited["moderationStatus"] == "pending"  # an edit is moderated again
    got = await b.next_event("message.edited")
    assert got.message["text"] == "second version"
    assert got.message["moderationStatus"] == "approved"
    deleted = await a.delete(sent["id"])
    assert deleted["deletedAt"] > 0 and deleted["text"] is None
    gone = await b.next_event("message.deleted")
    assert gone.message["id"] == sent["id"] and gone.message["text"] is None
    with pytest.raises(ServerError) as info:
        await b.request({"type": "message.edit", "messageId": sent["id"], "text": "hijack"})
    assert info.value.code in ("ERR_FORBIDDEN", "ERR_NOT_FOUND")


async def test_receipts_and_typing(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "n", {})
    await b.next_event("message")
    await b.receipt(sent["id"], "delivered")
    await b.receipt(sent["id"], "read")
    r1 = await a.next_event("receipt")
    r2 = await a.next_event("receipt")
    assert [(r.data["receiptType"], r.data["uid"], r.data["messageId"]) for r in (r1, r2)] == [
        ("delivered", bob, sent["id"]),
        ("read", bob, sent["id"]),
    ]
    assert r1.data["conversationId"] == conv(alice, bob) and r1.data["at"] > 0
    await a.typing(bob, "start")
    t = await b.next_event("typing")
    assert (
        t.data["sender"] == alice
        and t.data["state"] == "start"
        and t.data["receiverType"] == "user"
    )


async def test_group_message_fans_out_to_members_only(world: World) -> None:
    owner, m1, m2, outsider = [await world.user(p) for p in ("own", "m1", "m2", "out")]
    guid = unique("g")
    await world.rest.create_group(guid, "Group", type="public", owner=owner)
    o, c1, c2, x = [await world.connect(u) for u in (owner, m1, m2, outsider)]
    for uid in (m1, m2):
        await world.rest.add_member(guid, uid)
    await c1.next_event("group.member", predicate=lambda e: e.data["uid"] == m2)
    sent = await o.send_text(guid, "hello group", receiver_type="group")
    assert sent["conversationId"] == f"group_{guid}"
    for c in (c1, c2):
        got = await c.next_event("message")
        assert got.message["id"] == sent["id"]
    await x.expect_no_event("message", within=0.3)
    with pytest.raises(ServerError) as info:
        await x.send_text(guid, "let me in", receiver_type="group")
    assert info.value.code == "ERR_NOT_A_MEMBER"


async def test_ping_pong_and_frame_ids(world: World) -> None:
    a = await world.connect(await world.user("p"))
    await a.ping()
    reply = await a.request({"type": "ping"})
    assert reply.type == "pong"


async def test_rest_send_as_user_and_as_backend(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    b = await world.connect(bob)
    msg = await world.rest.send_message(
        sender=alice,
        receiverType="user",
        receiver=bob,
        category="custom",
        messageType="order",
        data={"id": 9},
    )
    assert msg["sender"] == alice
    got = await b.next_event("message")
    assert got.message["id"] == msg["id"]


async def test_concurrent_senders_keep_increasing_ids(world: World) -> None:
    users = [await world.user("c") for _ in range(4)]
    sink = await world.user("sink")
    clients = [await world.connect(u) for u in users]
    results = await asyncio.gather(
        *(c.send_custom(sink, "n", {"i": i}) for i, c in enumerate(clients) for _ in range(5))
    )
    ids = [m["id"] for m in results]
    assert len(set(ids)) == len(ids) == 20


async def test_history_pages_back_with_has_more(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    ids = [(await a.send_custom(bob, "n", {"i": i}))["id"] for i in range(5)]
    async with world.user_rest(await world.token(bob)) as rb:
        cid = conv(alice, bob)
        pages, before, more = [], None, True
        while more:
            page = await rb.history_page(cid, before=before, limit=2)
            got = [m["id"] for m in page["messages"]]
            assert got == sorted(got)  # oldest first within a page
            pages.append(got)
            before, more = got[0], page["hasMore"]
        assert pages == [ids[3:5], ids[1:3], ids[0:1]]
        exact = await rb.history_page(cid, limit=5)
        assert [m["id"] for m in exact["messages"]] == ids and exact["hasMore"] is False
