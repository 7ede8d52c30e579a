"""Blocking: nothing crosses a block in either direction."""

from __future__ import annotations

import pytest

from client.sdk import ServerError
from tests.conftest import World, unique


async def test_block_stops_messages_typing_and_receipts_both_ways(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    early = await a.send_custom(bob, "n", {})
    await b.next_event("message")
    async with world.user_rest(await world.token(bob)) as rb:
        await rb.block(alice)
        assert alice in str(await rb.blocked_users())
        for sender, receiver in ((a, bob), (b, alice)):
            with pytest.raises(ServerError) as info:
                await sender.send_text(receiver, "hi")
            assert info.value.code == "ERR_BLOCKED"
            with pytest.raises(ServerError) as info:
                await sender.request(
                    {
                        "type": "typing",
                        "receiver": receiver,
                        "receiverType": "user",
                        "state": "start",
                    }
                )
            assert info.value.code == "ERR_BLOCKED"
        with pytest.raises(ServerError) as info:
            await b.request({"type": "receipt", "messageId": early["id"], "receiptType": "read"})
        assert info.value.code == "ERR_BLOCKED"
        await a.expect_no_event("receipt", "typing", "message", within=0.3)
        await rb.unblock(alice)
    await a.send_custom(bob, "n", {})
    await b.next_event("message")


async def test_block_filters_group_fan_out(world: World) -> None:
    owner, m1, m2 = await world.user("o"), await world.user("m1"), await world.user("m2")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, m1)
    await world.rest.add_member(guid, m2)
    async with world.user_rest(await world.token(m1)) as r1:
        await r1.block(owner)
    c1, c2, o = await world.connect(m1), await world.connect(m2), await world.connect(owner)
    await o.send_custom(guid, "n", {"x": 1}, receiver_type="group")
    await c2.next_event("message")
    await c1.expect_no_event("message", within=0.3)
