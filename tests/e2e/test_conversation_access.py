"""Conversation ids that read as more than one conversation never share messages or access.

Uids may contain ``_user_`` and may start with ``group``, so the wire id of one conversation
can spell another's (PROTOCOL.md, Message object). These are the outside probe's repros.
"""

from __future__ import annotations

import uuid

import pytest

from client.sdk import ServerError
from tests.conftest import World


def _tag() -> str:
    return "p" + uuid.uuid4().hex[:6]


async def test_crafted_uids_never_read_another_pairs_direct_messages(world: World) -> None:
    p = _tag()
    a, b_user_c = f"{p}a", f"{p}b_user_{p}c"
    a_user_b, c = f"{p}a_user_{p}b", f"{p}c"
    for uid in (a, b_user_c, a_user_b, c):
        await world.rest.create_user(uid, uid)
    cid = f"{p}a_user_{p}b_user_{p}c"  # the wire id of both pairs
    receivers = [await world.connect(c), await world.connect(b_user_c)]
    secret = await (await world.connect(a_user_b)).send_custom(c, "note", {"pin": 1234})
    assert secret["conversationId"] == cid
    mine = await (await world.connect(a)).send_custom(b_user_c, "note", {"hi": 1})
    assert mine["conversationId"] == cid
    for receiver in receivers:  # both delivered, so visible to their receivers
        await receiver.next_event("message")

    async with world.user_rest(await world.token(a)) as rest_a:
        seen = await rest_a.history(cid)
    assert [m["id"] for m in seen] == [mine["id"]]
    async with world.user_rest(await world.token(c)) as rest_c:
        seen = await rest_c.history(cid)
    assert [m["id"] for m in seen] == [secret["id"]]
    async with world.user_rest(await world.token(b_user_c)) as rest_b:
        seen = await rest_b.history(cid)
    assert [m["id"] for m in seen] == [mine["id"]]


async def test_a_group_named_like_a_direct_conversation_never_reads_it(world: World) -> None:
    q = _tag()
    dm_user, peer = f"group_{q}", f"{q}x"  # their DM's wire id: group_<q>_user_<q>x
    outsider = f"{q}m"
    for uid in (dm_user, peer, outsider):
        await world.rest.create_user(uid, uid)
    guid = f"{q}_user_{q}x"
    await world.rest.create_group(guid, "lookalike", type="private", owner=outsider)
    cid = f"group_{guid}"
    receiver = await world.connect(peer)
    secret = await (await world.connect(dm_user)).send_custom(peer, "note", {"pin": 1})
    assert secret["conversationId"] == cid
    await receiver.next_event("message")
    said = await (await world.connect(outsider)).send_custom(
        guid, "note", {"g": 1}, receiver_type="group"
    )

    async with world.user_rest(await world.token(outsider)) as rest_m:
        seen = await rest_m.history(cid)
    assert [m["id"] for m in seen] == [said["id"]]
    async with world.user_rest(await world.token(peer)) as rest_peer:
        seen = await rest_peer.history(cid)
    assert [m["id"] for m in seen] == [secret["id"]]


async def test_someone_elses_conversation_is_forbidden(world: World) -> None:
    alice, bob, eve = [await world.user(n) for n in ("alice", "bob", "eve")]
    sent = await (await world.connect(alice)).send_custom(bob, "note", {})
    async with world.user_rest(await world.token(eve)) as rest_e:
        with pytest.raises(ServerError) as info:
            await rest_e.history(sent["conversationId"])
    assert (info.value.status, info.value.code) == (403, "ERR_FORBIDDEN")
