"""Input a client cannot be trusted with (security probe, issue 10): numbers the server
cannot give back, ids with a trailing newline, integers past 64 bits, lone surrogates.
Each is refused with ERR_BAD_REQUEST over REST and WebSocket, nothing is stored, and the
connection keeps working."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from client.sdk import ParleyClient, ServerError
from tests.conftest import World, unique

BIG = 10**30  # past SQLite's (and orjson's) 64 bits
API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "content-type": "application/json"}


def api_key(world: World) -> dict[str, str]:
    return {"X-API-Key": world.server.api_key, "content-type": "application/json"}


def raw_json(value: object) -> bytes:
    """``value`` as Python's json writes it: NaN and big ints included, surrogates escaped."""
    return json.dumps(value).encode()


def assert_bad_request(response: httpx.Response, field: str | None = None) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "ERR_BAD_REQUEST", body
    if field is not None:
        assert body["details"]["field"] == field, body


async def error_for(client: ParleyClient, frame: str) -> dict[str, Any]:
    """Send one raw frame; the ``error`` frame that answers it."""
    await client.send_raw(frame)
    return (await client.next_event("error")).data


async def group_of(world: World, *uids: str) -> str:
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=uids[0])
    for uid in uids[1:]:
        await world.rest.add_member(guid, uid)
    return guid


# ------------------------------------------------------------------ NaN and big integers


async def test_nan_and_huge_int_metadata_are_refused_and_poison_nothing(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    guid = await group_of(world, alice, bob)
    b = await world.connect(bob)
    a = await world.connect(alice)
    body = {
        "receiverType": "group",
        "receiver": guid,
        "messageType": "text",
        "text": "hello",
        "metadata": {"x": float("nan"), "y": 2**64},
    }
    token = await world.token(alice)
    base = world.server.url + API
    async with httpx.AsyncClient(base_url=base) as h:
        r = await h.post("/messages", headers=bearer(token), content=raw_json(body))
        assert_bad_request(r, "metadata.x")
        r = await h.post(
            "/messages", headers=bearer(token), content=raw_json({**body, "metadata": {"y": 2**64}})
        )
        assert_bad_request(r, "metadata.y")
        # The same over the socket: refused, answered with the frame's id.
        err = await error_for(a, json.dumps({"type": "message.send", "id": "n1", **body}))
        assert (err["code"], err["id"], err["details"]) == (
            "ERR_BAD_REQUEST",
            "n1",
            {"field": "metadata.x"},
        )
        await b.expect_no_event("message", within=0.3)

        # Nothing was stored: history, the moderation queue and the export still answer.
        r = await h.get(f"/conversations/group_{guid}/messages", headers=bearer(token))
        assert r.status_code == 200 and r.json()["messages"] == [], r.text
        r = await h.get("/moderation/queue?state=disapproved", headers=api_key(world))
        assert r.status_code == 200, r.text
        r = await h.get(f"/users/{alice}/export", headers=api_key(world))
        assert r.status_code == 200, r.text

        # The 64-bit bounds themselves are kept exactly, for the sender and the receiver.
        edge = {"max": 2**63 - 1, "min": -(2**63), "f": 0.1}
        r = await h.post(
            "/messages", headers=bearer(token), content=raw_json({**body, "metadata": edge})
        )
        assert r.status_code == 201, r.text
        assert r.json()["message"]["metadata"] == edge
        got = await b.next_event("message")
        assert got.message["metadata"] == edge
        r = await h.get(f"/conversations/group_{guid}/messages", headers=bearer(token))
        assert [m["metadata"] for m in r.json()["messages"]] == [edge]


# ------------------------------------------------------------------ integers past 64 bits


async def test_out_of_range_integers_answer_400_over_rest(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    token = await world.token(alice)
    cid = f"{min(alice, bob)}_user_{max(alice, bob)}"
    send = {"receiverType": "user", "receiver": bob, "messageType": "text", "text": "hi"}
    user, key = bearer(token), api_key(world)
    async with httpx.AsyncClient(base_url=world.server.url + API) as h:
        cases = [
            (await h.post("/messages", headers=user, json={**send, "parentId": BIG}), "parentId"),
            (await h.get(f"/conversations/{cid}/messages?before={BIG}", headers=user), "before"),
            (await h.get(f"/messages/{BIG}", headers=user), "messageId"),
            (await h.patch(f"/messages/{BIG}", headers=user, json={"text": "x"}), "messageId"),
            (await h.delete(f"/messages/{BIG}", headers=user), "messageId"),
            (
                await h.post(f"/messages/{BIG}/flag", headers=user, json={"reason": "x"}),
                "messageId",
            ),
            (await h.post(f"/moderation/messages/{BIG}/approve", headers=key), "messageId"),
            (await h.post(f"/moderation/messages/{BIG}/disapprove", headers=key), "messageId"),
            # str.isdigit() says yes to a superscript two; int() then fails.
            (await h.post("/moderation/messages/\u00b2/approve", headers=key), "messageId"),
            (await h.get(f"/audit?since={BIG}", headers=key), "since"),
        ]
        for response, field in cases:
            assert_bad_request(response, field)
        r = await h.get(f"/audit?since={2**63 - 1}", headers=key)
        assert r.status_code == 200 and r.json()["entries"] == [], r.text
        r = await h.get(f"/conversations/{cid}/messages", headers=user)
        assert r.status_code == 200 and r.json()["messages"] == [], r.text


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message.edit", "messageId": BIG, "text": "x"},
        {"type": "message.delete", "messageId": BIG},
        {"type": "receipt", "messageId": BIG, "receiptType": "read"},
        {"type": "message.flag", "messageId": BIG, "reason": "spam"},
        {"type": "message.send", "receiverType": "user", "messageType": "text", "text": "x"},
    ],
    ids=["edit", "delete", "receipt", "flag", "send-parentId"],
)
async def test_out_of_range_integers_are_bad_frames(world: World, frame: dict[str, Any]) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    if frame["type"] == "message.send":
        frame = {**frame, "receiver": bob, "parentId": BIG}
    err = await error_for(a, json.dumps({**frame, "id": "big"}))
    field = "parentId" if frame["type"] == "message.send" else "messageId"
    assert (err["code"], err["id"], err["details"]) == ("ERR_BAD_REQUEST", "big", {"field": field})
    await a.ping()
    async with world.user_rest(await world.token(alice)) as r:
        assert await r.history(f"{min(alice, bob)}_user_{max(alice, bob)}") == []


# ------------------------------------------------------------------ ids ending in a newline


async def test_ids_with_a_trailing_newline_are_refused(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    guid = await group_of(world, alice, bob)
    key = api_key(world)
    async with httpx.AsyncClient(base_url=world.server.url + API) as h:
        assert_bad_request(await h.post("/users", headers=key, json={"uid": alice + "x\n"}), "uid")
        r = await h.post("/groups", headers=key, json={"guid": guid + "x\n", "owner": alice})
        assert_bad_request(r, "guid")
        r = await h.post(f"/groups/{guid}/members", headers=key, json={"uid": bob + "\n"})
        assert_bad_request(r, "uid")
        word_list = {"id": unique("l") + "\n", "name": "L", "kind": "keywords", "items": ["w"]}
        r = await h.post("/moderation/lists", headers=key, json=word_list)
        assert_bad_request(r)
    a = await world.connect(alice)
    for receiver, receiver_type in ((bob + "\n", "user"), (guid + "\n", "group")):
        frame = {
            "type": "message.send",
            "id": "nl",
            "receiverType": receiver_type,
            "receiver": receiver,
            "messageType": "text",
            "text": "hi",
        }
        err = await error_for(a, json.dumps(frame))
        assert (err["code"], err["details"]) == ("ERR_BAD_REQUEST", {"field": "receiver"})


# ------------------------------------------------------------------ lone surrogates


async def test_lone_surrogate_frames_are_refused_and_replies_keep_coming(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    send = {"type": "message.send", "receiverType": "user", "receiver": bob, "messageType": "text"}
    # json.dumps writes the surrogate as the escape "\ud800": valid UTF-8, so the frame
    # reaches the parser.
    err = await error_for(a, json.dumps({"type": "ping", "id": "\ud800"}))
    assert (err["code"], err["details"]) == ("ERR_BAD_REQUEST", {"field": "id"})
    assert "id" not in err  # never echo an id that cannot be written back
    err = await error_for(a, json.dumps({**send, "id": "\ud800", "text": "hi"}))
    assert err["code"] == "ERR_BAD_REQUEST" and "id" not in err
    err = await error_for(a, json.dumps({**send, "id": "s2", "text": "hi \udc00"}))
    assert (err["code"], err["id"], err["details"]) == ("ERR_BAD_REQUEST", "s2", {"field": "text"})
    err = await error_for(
        a, json.dumps({**send, "id": "s3", "text": "hi", "metadata": {"\ud83d": 1}})
    )
    assert (err["id"], err["details"]) == ("s3", {"field": "metadata.\\ud83d"})
    # The connection still answers, and nothing was stored or delivered.
    await a.ping()
    sent = await a.send_text(bob, "still here \U0001f600")
    assert (await b.next_event("message")).message["id"] == sent["id"]
    async with world.user_rest(await world.token(alice)) as r:
        history = await r.history(sent["conversationId"])
    assert [m["text"] for m in history] == ["still here \U0001f600"]


async def test_lone_surrogates_in_rest_bodies_are_refused(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    token = await world.token(alice)
    uid = unique("s")
    async with httpx.AsyncClient(base_url=world.server.url + API) as h:
        body = {"receiverType": "user", "receiver": bob, "messageType": "text", "text": "a\ud800"}
        r = await h.post("/messages", headers=bearer(token), content=raw_json(body))
        assert_bad_request(r, "text")
        r = await h.post(
            "/users", headers=api_key(world), content=raw_json({"uid": uid, "name": "\udfff"})
        )
        assert_bad_request(r, "name")
        r = await h.get(f"/users/{uid}", headers=api_key(world))
        assert r.status_code == 404, r.text
        r = await h.get(f"/users/{alice}/export", headers=api_key(world))
        assert r.status_code == 200 and r.json()["messages"] == [], r.text


async def test_nul_characters_are_refused_alike_on_both_backends(world: World) -> None:
    """PostgreSQL text cannot hold NUL (SQLite can): a NUL in a URL, a JSON body or a frame is
    a plain 400 / ERR_BAD_REQUEST, never a 500, whichever backend runs."""
    alice = await world.user("nul")
    token = await world.token(alice)
    async with httpx.AsyncClient(base_url=world.server.url + "/api/v1") as http:
        auth = {"Authorization": f"Bearer {token}"}
        for path in ("/users?search=a%00b", "/users/a%00b", "/me/conversations?before=%00"):
            r = await http.get(path, headers=auth)
            assert r.status_code == 400 and r.json()["code"] == "ERR_BAD_REQUEST", path
        r = await http.post(
            "/groups",
            content=b'{"guid":"g1","name":"a\\u0000b"}',
            headers={**auth, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json()["details"]["field"] == "name"
    bob = await world.user("nul-peer")
    a = await world.connect(alice)
    with pytest.raises(ServerError) as err:
        await a.send_text(bob, "hi\x00there")
    assert err.value.code == "ERR_BAD_REQUEST" and err.value.details["field"] == "text"
    assert (await a.send_text(bob, "hi there"))["id"]  # the connection carries on
