"""Reactions and thread replies end to end (issue 16 item 8): frames to everyone who has the
message, counts in history, REST and WebSocket, threads with reply counts, and what is
refused (held or blocked messages, outsiders, blocks, bad emoji, foreign parents)."""

from __future__ import annotations

from typing import Any

import pytest

from client.sdk import ParleyClient, ServerError
from tests.conftest import World, unique

BLOCKED_TEXT = "you are a f.u.c.k.i.n.g idiot"  # the default profanity rule blocks it


async def group_of_three(world: World) -> tuple[str, list[str], list[ParleyClient]]:
    uids = [await world.user(p) for p in ("ann", "ben", "cat")]
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=uids[0])
    for uid in uids[1:]:
        await world.rest.add_member(guid, uid)
    clients = [await world.connect(u) for u in uids]
    return guid, uids, clients


async def delivered(client: ParleyClient, message_id: int) -> dict[str, Any]:
    ev = await client.next_event("message", predicate=lambda e: e.message.get("id") == message_id)
    return ev.message


async def history_item(world: World, uid: str, message: dict[str, Any]) -> dict[str, Any]:
    async with world.user_rest(await world.token(uid)) as rest:
        page = await rest.history(message["conversationId"])
    return next(m for m in page if m["id"] == message["id"])


async def test_reactions_reach_everyone_who_has_the_message_and_count_in_history(
    world: World,
) -> None:
    guid, (ann, ben, cat), (a, b, c) = await group_of_three(world)
    sent = await a.send_text(guid, "lunch at noon?", receiver_type="group")
    await delivered(b, sent["id"])
    await delivered(c, sent["id"])

    reply = await b.react(sent["id"], "👍")
    assert reply["type"] == "message.reaction"
    assert reply["uid"] == ben and reply["action"] == "added" and reply["emoji"] == "👍"
    assert reply["reactions"] == {"👍": 1}
    assert reply["conversationId"] == f"group_{guid}"
    for other in (a, c):
        ev = await other.next_event("message.reaction")
        assert ev.data["messageId"] == sent["id"] and ev.data["uid"] == ben
        assert ev.data["reactions"] == {"👍": 1}
    await b.expect_no_event("message.reaction", within=0.3)  # the reply was its frame

    await c.react(sent["id"], "👍")
    await c.react(sent["id"], "🎉")
    assert (await a.next_event("message.reaction")).data["reactions"] == {"👍": 2}
    assert (await a.next_event("message.reaction")).data["reactions"] == {"👍": 2, "🎉": 1}

    # Adding one again changes nothing and tells no one.
    again = await b.react(sent["id"], "👍")
    assert again["reactions"] == {"👍": 2, "🎉": 1}
    await a.expect_no_event("message.reaction", within=0.3)

    mine = await history_item(world, cat, sent)
    assert mine["reactions"] == {"👍": 2, "🎉": 1}
    assert sorted(mine["myReactions"]) == ["🎉", "👍"]
    assert (await history_item(world, ann, sent))["myReactions"] == []

    removed = await b.unreact(sent["id"], "👍")
    assert removed["action"] == "removed" and removed["reactions"] == {"👍": 1, "🎉": 1}
    ev = await a.next_event("message.reaction")
    assert ev.data["action"] == "removed" and ev.data["reactions"] == {"👍": 1, "🎉": 1}
    async with world.user_rest(await world.token(ann)) as rest:
        who = await rest.reactions(sent["id"])
        one = await rest.get_message(sent["id"])
    assert sorted(who, key=lambda r: r["emoji"]) == [
        {"emoji": "🎉", "count": 1, "uids": [cat]},
        {"emoji": "👍", "count": 1, "uids": [cat]},
    ]
    assert one["reactions"] == {"👍": 1, "🎉": 1} and one["replyCount"] == 0


async def test_reactions_over_rest_with_encoded_emoji(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "note", {"n": 1})  # unmoderated: delivered at once
    await delivered(b, sent["id"])
    family = "👨‍👩‍👧"  # joined with zero-width joiners
    async with world.user_rest(await world.token(bob)) as rest:
        first = await rest.react(sent["id"], family)
        assert first["reactions"] == {family: 1}
        with pytest.raises(ServerError) as refused:
            await rest.react(sent["id"], "two words")
        assert refused.value.status == 400 and refused.value.details == {"field": "emoji"}
        # the same again: 200, not 201
        r = await rest._http.post(f"/messages/{sent['id']}/reactions", json={"emoji": family})
        assert r.status_code == 200
        ev = await a.next_event("message.reaction")
        assert ev.data["reactions"] == {family: 1} and ev.data["uid"] == bob
        gone = await rest.unreact(sent["id"], family)
        assert gone["reactions"] == {} and gone["action"] == "removed"
    ev = await a.next_event("message.reaction")
    assert ev.data["action"] == "removed" and ev.data["reactions"] == {}
    async with world.user_rest(await world.token(alice)) as rest:
        with pytest.raises(ServerError) as err:  # the API key is not a user
            await world.rest.react(sent["id"], "👍")
        assert err.value.status == 403
        assert (await history_item(world, alice, sent))["reactions"] == {}


async def test_what_may_not_be_reacted_to(world: World) -> None:
    alice, bob, eve = await world.user("alice"), await world.user("bob"), await world.user("eve")
    a, b, e = await world.connect(alice), await world.connect(bob), await world.connect(eve)
    held = await a.send_text(bob, BLOCKED_TEXT)
    assert (await a.next_event("message.moderated")).message["moderationStatus"] == "disapproved"
    with pytest.raises(ServerError) as err:
        await a.react(held["id"], "👍")  # its sender sees it, but it was never delivered
    assert err.value.code == "ERR_CONFLICT"
    with pytest.raises(ServerError) as err:
        await b.react(held["id"], "👍")  # its receiver never had it: nothing to reveal
    assert err.value.code == "ERR_NOT_FOUND"

    ok = await a.send_custom(bob, "note", {"n": 2})
    await delivered(b, ok["id"])
    with pytest.raises(ServerError) as err:
        await e.react(ok["id"], "👍")  # not in the conversation
    assert err.value.code == "ERR_NOT_FOUND"
    for bad in ("", "a b", "x/y", "\u202e", "x" * 33):
        with pytest.raises(ServerError) as err:
            await b.request({"type": "reaction.add", "messageId": ok["id"], "emoji": bad})
        assert err.value.code == "ERR_BAD_REQUEST"

    for i in range(20):
        await b.react(ok["id"], f":e{i}:")
    with pytest.raises(ServerError) as err:
        await b.react(ok["id"], ":one-too-many:")
    assert err.value.code == "ERR_BAD_REQUEST" and err.value.details["limit"] == 20

    async with world.user_rest(await world.token(bob)) as rest:
        await rest.block(alice)
    with pytest.raises(ServerError) as err:
        await a.react(ok["id"], "👍")
    assert err.value.code == "ERR_BLOCKED"

    gone = await a.send_custom(eve, "note", {"n": 3})
    await delivered(e, gone["id"])
    await a.delete(gone["id"])
    with pytest.raises(ServerError) as err:
        await e.react(gone["id"], "👍")
    assert err.value.code == "ERR_NOT_FOUND"


async def test_thread_replies_count_on_the_parent_and_page_as_a_thread(world: World) -> None:
    guid, (ann, ben, cat), (a, b, c) = await group_of_three(world)
    root = await a.send_text(guid, "who is coming on friday?", receiver_type="group")
    root = await delivered(b, root["id"])
    await delivered(c, root["id"])

    r1 = await b.reply_text(root, "me")
    got = await delivered(c, r1["id"])
    assert got["parentId"] == root["id"]
    await delivered(a, r1["id"])
    r2 = await c.reply_text(root, "me too")
    await delivered(a, r2["id"])
    blocked = await c.reply_text(root, BLOCKED_TEXT)  # disapproved: counted for no one
    verdict = await c.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == blocked["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"

    assert (await history_item(world, ann, root))["replyCount"] == 2
    assert (await history_item(world, cat, root))["replyCount"] == 2
    async with world.user_rest(await world.token(ann)) as rest:
        page = await rest.thread(root["id"])
        assert page["parent"]["id"] == root["id"] and page["parent"]["replyCount"] == 2
        assert [m["id"] for m in page["messages"]] == [r1["id"], r2["id"]]
        assert page["hasMore"] is False
        older = await rest.thread(root["id"], limit=1)
        assert [m["id"] for m in older["messages"]] == [r2["id"]] and older["hasMore"]
        rest_of = await rest.thread(root["id"], before=r2["id"])
        assert [m["id"] for m in rest_of["messages"]] == [r1["id"]]
    async with world.user_rest(await world.token(cat)) as rest:
        own = await rest.thread(root["id"])  # its sender also sees the blocked reply
        assert [m["id"] for m in own["messages"]] == [r1["id"], r2["id"], blocked["id"]]
    # A reply to a reply threads under that reply.
    nested = await a.reply_text(r1, "see you")
    await delivered(b, nested["id"])
    assert (await history_item(world, ben, r1))["replyCount"] == 1

    # Staff (the API key) see the whole thread.
    whole = await world.rest.thread(root["id"])
    assert len(whole["messages"]) == 3


async def test_a_reply_must_name_a_delivered_message_of_its_conversation(world: World) -> None:
    alice, bob, carol = await world.user("alice"), await world.user("bob"), await world.user("c")
    a, b = await world.connect(alice), await world.connect(bob)
    elsewhere = await a.send_custom(carol, "note", {"n": 1})
    with pytest.raises(ServerError) as err:
        await a.send_text(bob, "re", parent_id=elsewhere["id"])
    assert err.value.code == "ERR_NOT_FOUND" and err.value.details == {"parentId": elsewhere["id"]}
    with pytest.raises(ServerError) as err:
        await a.send_text(bob, "re", parent_id=2**40)
    assert err.value.code == "ERR_NOT_FOUND"
    held = await a.send_text(bob, BLOCKED_TEXT)
    await a.next_event("message.moderated", predicate=lambda e: e.message["id"] == held["id"])
    with pytest.raises(ServerError) as err:
        await a.send_text(bob, "re", parent_id=held["id"])  # own, but never delivered
    assert err.value.code == "ERR_CONFLICT"
    with pytest.raises(ServerError) as err:
        await b.send_text(alice, "re", parent_id=held["id"])  # bob never had it
    assert err.value.code == "ERR_NOT_FOUND"
    ok = await a.send_custom(bob, "note", {"n": 2})
    reply = await b.send_text(alice, "thanks", parent_id=ok["id"])  # either side may reply
    assert reply["parentId"] == ok["id"]
    # Nothing refused was stored: the thread holds the one reply.
    assert [m["id"] for m in (await world.rest.thread(ok["id"]))["messages"]] == [reply["id"]]


async def test_erasing_a_user_takes_their_reactions_and_export_lists_them(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "note", {"n": 1})
    await delivered(b, sent["id"])
    await b.react(sent["id"], "🔥")
    export = await world.rest.export_user(bob)
    assert export["reactions"] == [
        {"messageId": sent["id"], "emoji": "🔥", "at": export["reactions"][0]["at"]}
    ]
    await b.close()
    await world.rest.delete_user(bob, erase=True)
    assert (await history_item(world, alice, sent))["reactions"] == {}


async def test_a_shadow_banned_users_reactions_count_for_them_only(world: World) -> None:
    guid, (ann, ben, cat), (a, b, c) = await group_of_three(world)
    sent = await a.send_custom(guid, "note", {"n": 1}, receiver_type="group")
    await delivered(b, sent["id"])
    await world.rest.restrict(ben, "shadow_ban", reason="bot")
    reply = await b.react(sent["id"], "👍")
    assert reply["reactions"] == {"👍": 1}  # as far as ben can tell, it worked
    await a.expect_no_event("message.reaction", within=0.4)
    assert (await history_item(world, ann, sent))["reactions"] == {}
    assert (await history_item(world, ben, sent))["reactions"] == {"👍": 1}
