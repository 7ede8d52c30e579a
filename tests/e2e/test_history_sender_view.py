"""History keeps, for the sender of each message, what the live frames told them: the receipts
(ticks) and the reason a message was blocked, so a client that reloads shows the same."""

from __future__ import annotations

from typing import Any

from tests.conftest import World, unique


async def history_of(world: World, uid: str, cid: str) -> dict[int, dict[str, Any]]:
    async with world.user_rest(await world.token(uid)) as rest:
        return {m["id"]: m for m in await rest.history(cid)}


async def test_own_messages_carry_receipt_counts_and_block_reasons(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    read = await a.send_custom(bob, "n", {"i": 1})
    delivered = await a.send_custom(bob, "n", {"i": 2})
    silent = await a.send_custom(bob, "n", {"i": 3})
    await b.receipt(read["id"], "delivered")
    await b.receipt(read["id"], "read")
    await b.receipt(delivered["id"], "delivered")
    await b.ping()
    mine = await b.send_custom(alice, "n", {"i": 4})
    await a.receipt(mine["id"], "read")
    blocked = await a.send_text(bob, "you are a f.u.c.k.i.n.g idiot")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == blocked["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"
    await a.ping()

    cid = read["conversationId"]
    seen = await history_of(world, alice, cid)
    assert seen[read["id"]]["receipts"] == {"delivered": 1, "read": 1}
    assert seen[delivered["id"]]["receipts"] == {"delivered": 1, "read": 0}
    assert seen[silent["id"]]["receipts"] == {"delivered": 0, "read": 0}
    # The reason is the one the live verdict gave, kept in history for the sender.
    assert seen[blocked["id"]]["moderation"] == verdict.data["moderation"]
    assert seen[blocked["id"]]["moderation"]["reason"]
    # Receipts and reasons are the sender's: alice's view of bob's message has neither.
    assert "receipts" not in seen[mine["id"]] and "moderation" not in seen[read["id"]]

    theirs = await history_of(world, bob, cid)
    assert theirs[mine["id"]]["receipts"] == {"delivered": 0, "read": 1}
    assert "receipts" not in theirs[read["id"]]
    assert blocked["id"] not in theirs


async def test_group_receipts_count_readers_but_not_shadow_banned_ones(world: World) -> None:
    owner, reader, lurker = await world.user("o"), await world.user("r"), await world.user("l")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, reader)
    await world.rest.add_member(guid, lurker)
    o, r, lu = await world.connect(owner), await world.connect(reader), await world.connect(lurker)
    sent = await o.send_custom(guid, "n", {"i": 1}, receiver_type="group")
    await world.rest.restrict(lurker, "shadow_ban", reason="bot")
    await r.receipt(sent["id"], "read")
    await lu.receipt(sent["id"], "read")  # accepted, but never shown to the sender
    await r.ping()
    await lu.ping()
    seen = await history_of(world, owner, f"group_{guid}")
    assert seen[sent["id"]]["receipts"] == {"delivered": 0, "read": 1}
