"""Edits, deletes and retries reach exactly those who should see them; auth frames are checked."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from client.sdk import ServerError
from tests.conftest import World


async def test_disapproved_edit_withdraws_the_delivered_message(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "see you at noon")
    await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    await a.next_event("message.moderated")
    await a.edit(sent["id"], "see you at noon, you piece of shit")
    verdict = await a.next_event("message.moderated")
    assert verdict.message["moderationStatus"] == "disapproved"
    gone = await b.next_event("message.deleted")
    assert gone.message["id"] == sent["id"]
    assert gone.message["text"] is None and gone.message["deletedAt"] > 0
    await b.expect_no_event("message.edited", within=0.3)
    async with world.user_rest(await world.token(bob)) as rb:
        assert sent["id"] not in {m["id"] for m in await rb.history(sent["conversationId"])}


async def test_approved_edit_of_a_blocked_message_arrives_as_a_message(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "what the fuck")
    assert (await a.next_event("message.moderated")).message["moderationStatus"] == "disapproved"
    await a.edit(sent["id"], "what the heck")
    assert (await a.next_event("message.moderated")).message["moderationStatus"] == "approved"
    got = await b.next_event("message", "message.edited")
    assert got.type == "message" and got.message["text"] == "what the heck"


async def test_delete_reaches_a_receiver_who_blocked_the_sender_since(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "note", {"n": 1})
    await b.next_event("message")
    async with world.user_rest(await world.token(bob)) as rb:
        await rb.block(alice)
    await a.delete(sent["id"])
    gone = await b.next_event("message.deleted")
    assert gone.message["id"] == sent["id"] and gone.message["data"] is None


async def test_later_auth_frames_are_verified(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    again = await a.request({"type": "auth", "token": await world.token(alice)})
    assert again.type == "auth.ok" and again.data["user"]["uid"] == alice
    with pytest.raises(ServerError) as info:
        await a.request({"type": "auth", "token": await world.token(bob)})
    assert info.value.code == "ERR_BAD_REQUEST"
    await a.ping()  # still open, still alice
    await a.send_raw(json.dumps({"type": "auth", "id": "bad", "token": "abc.def.ghi"}))
    err = await a.next_event("error")
    assert err.data["code"] == "ERR_AUTH_INVALID" and err.data["id"] == "bad"
    assert await a.wait_closed() == 4401


async def test_binary_first_frame_is_explained_then_closed(world: World) -> None:
    async with connect(world.server.ws_url) as ws:
        await ws.send(b"\x00\x01")
        err = json.loads(await ws.recv())
        assert err["type"] == "error" and err["code"] == "ERR_BAD_REQUEST"
        try:
            await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None and exc.rcvd.code == 1003
        else:
            raise AssertionError("connection stayed open")


async def test_a_retry_returns_the_stored_message_even_after_a_block(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    first = await a.send_custom(bob, "n", {"i": 1}, muid="retry-1")
    async with world.user_rest(await world.token(bob)) as rb:
        await rb.block(alice)
    again = await a.send_custom(bob, "n", {"i": 1}, muid="retry-1")
    assert again["id"] == first["id"]
    with pytest.raises(ServerError) as info:
        await a.send_custom(bob, "n", {"i": 2}, muid="retry-2")
    assert info.value.code == "ERR_BLOCKED"


async def test_rest_send_checks_auth_before_the_body(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.server.url + "/api/v1") as h:
        for path in ("/messages", "/messages/1/flag"):
            r = await h.post(path, content=b"{not json", headers={"content-type": "text/plain"})
            assert r.status_code == 401 and r.json()["code"] == "ERR_AUTH_REQUIRED"
