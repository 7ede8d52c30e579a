"""Offline push through a real loopback gateway (issue 16 item 7): a user with no live
connection gets a push per registered device, without the text unless the device asked,
retried with back-off, signed for webhooks; connected users get nothing pushed and their
delivery never waits for a gateway."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.responses import JSONResponse, Response

from client.sdk import ServerError
from moderation.providers.signing import verify
from tests.conftest import ServerProcess, World, free_port, world_on
from tests.e2e.peer import Peer, Recorded
from tests.pg import cluster
from tests.redis_server import redis_server

GATEWAY_PORT = free_port()
GATEWAY = f"http://127.0.0.1:{GATEWAY_PORT}"


@pytest.fixture(scope="module")
def push_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory(
        "--rate-limit",
        "0",
        "--push-gateways",
        f"{GATEWAY}/up/,{GATEWAY}/relay",
        env={"PARLEY_PUSH_RETRY_DELAY": "0.1", "PARLEY_PUSH_ATTEMPTS": "4"},
    )
    return srv


@pytest.fixture
async def pw(push_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(push_server) as w:
        yield w


@pytest.fixture
async def gateway() -> AsyncIterator[Peer]:
    async with Peer(port=GATEWAY_PORT) as peer:
        yield peer


async def register(world: World, uid: str, path: str, **kw: Any) -> dict[str, Any]:
    async with world.user_rest(await world.token(uid)) as rest:
        return await rest.register_push(GATEWAY + path, **kw)


def pushes_to(gateway: Peer, path: str) -> list[dict[str, Any]]:
    return [r.json() for r in gateway.requests if r.path == path]


async def test_an_offline_user_gets_a_push_without_the_text(pw: World, gateway: Peer) -> None:
    alice, bob, carol = await pw.user("alice"), await pw.user("bob"), await pw.user("carol")
    endpoint = await register(pw, bob, f"/up/{bob}", device_id="phone")
    assert endpoint["kind"] == "unifiedpush" and endpoint["includeText"] is False
    assert endpoint["deviceId"] == "phone" and "secret" not in endpoint
    await register(pw, carol, f"/up/{carol}")
    a = await pw.connect(alice)

    sent = await a.send_text(bob, "the door code is 4711")
    (req,) = await gateway.wait_for(1, path=f"/up/{bob}")
    body = req.json()
    assert body["messageId"] == sent["id"] and body["sender"] == alice
    assert body["conversationId"] == sent["conversationId"]
    assert body["endpointId"] == endpoint["endpointId"] and body["messageType"] == "text"
    assert "text" not in body and b"4711" not in req.body
    assert req.headers["content-type"] == "application/json"

    # Online now: nothing is pushed to bob. Carol, still offline, is pushed after him in the
    # same queue, so once her push is here his job has been handled.
    b = await pw.connect(bob)
    second = await a.send_custom(bob, "ping", {"n": 2})
    await b.next_event("message", predicate=lambda e: e.message["id"] == second["id"])
    third = await a.send_custom(carol, "ping", {"n": 3})
    (to_carol,) = await gateway.wait_for(1, path=f"/up/{carol}")
    assert to_carol.json()["messageId"] == third["id"]
    assert [p["messageId"] for p in pushes_to(gateway, f"/up/{bob}")] == [sent["id"]]


async def test_a_blocked_message_is_never_pushed_and_a_held_one_only_when_approved(
    pw: World, gateway: Peer
) -> None:
    alice, bob = await pw.user("alice"), await pw.user("bob")
    await register(pw, bob, f"/up/{bob}")
    a = await pw.connect(alice)
    blocked = await a.send_text(bob, "you are a f.u.c.k.i.n.g idiot")
    verdict = await a.next_event("message.moderated")
    assert verdict.message["moderationStatus"] == "disapproved"
    fine = await a.send_text(bob, "see you at noon")
    (req,) = await gateway.wait_for(1, path=f"/up/{bob}")
    assert req.json()["messageId"] == fine["id"] != blocked["id"]


async def test_webhook_endpoints_are_signed_and_may_carry_the_text(
    pw: World, gateway: Peer
) -> None:
    owner, ann, ben = await pw.user("own"), await pw.user("ann"), await pw.user("ben")
    guid = f"g-{owner}"
    await pw.rest.create_group(guid, "G", owner=owner)
    for uid in (ann, ben):
        await pw.rest.add_member(guid, uid)
    hook = await register(pw, ann, "/relay", kind="webhook", include_text=True, device_id="tab")
    await register(pw, ben, f"/up/{ben}")  # ben will be online
    secret = hook["secret"]
    o, _b = await pw.connect(owner), await pw.connect(ben)
    sent = await o.send_text(guid, "standup in 5", receiver_type="group")
    (req,) = await gateway.wait_for(1, path="/relay")
    body = req.json()
    assert body["text"] == "standup in 5" and body["receiverType"] == "group"
    assert body["messageId"] == sent["id"] and body["receiver"] == guid
    ts, sig = req.headers["x-parley-timestamp"], req.headers["x-parley-signature"]
    assert verify(secret, ts, sig, req.body)
    assert not verify(secret, ts, sig, req.body + b" ")
    assert req.headers["x-parley-event"] == "push"
    assert pushes_to(gateway, f"/up/{ben}") == []  # connected: delivered live only
    async with pw.user_rest(await pw.token(ann)) as rest:
        listed = await rest.push_endpoints()
    assert [e["endpointId"] for e in listed] == [hook["endpointId"]]
    assert "secret" not in listed[0]


async def test_failures_are_retried_with_back_off_and_gone_endpoints_removed(
    pw: World, gateway: Peer
) -> None:
    alice, bob, carol = await pw.user("alice"), await pw.user("bob"), await pw.user("carol")
    await register(pw, bob, f"/up/{bob}")
    await register(pw, carol, f"/up/{carol}")
    answers = {bob: [503, 502, 200], carol: [410]}

    async def flaky(request: Recorded) -> Response:
        who = request.path.rsplit("/", 1)[-1]
        status = answers[who].pop(0) if answers.get(who) else 200
        return JSONResponse({}, status_code=status)

    gateway.handler = flaky
    a = await pw.connect(alice)
    sent = await a.send_custom(bob, "ping", {"n": 1})
    tries = await gateway.wait_for(3, path=f"/up/{bob}")
    assert [t.json()["messageId"] for t in tries] == [sent["id"]] * 3
    assert len({t.body for t in tries}) == 1  # the same push each time
    await a.send_custom(carol, "ping", {"n": 2})
    await gateway.wait_for(1, path=f"/up/{carol}")
    async with pw.user_rest(await pw.token(carol)) as rest:
        for _ in range(500):  # the 410 removes the endpoint just after the answer
            if not await rest.push_endpoints():
                break
        assert await rest.push_endpoints() == []
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(pw.server.url + "/metrics")).text
    assert 'parley_push_total{outcome="retry"}' in metrics
    assert 'parley_push_total{outcome="gone"}' in metrics


async def test_a_hanging_gateway_never_holds_up_live_delivery(pw: World, gateway: Peer) -> None:
    alice, bob, carol = await pw.user("alice"), await pw.user("bob"), await pw.user("carol")
    await register(pw, bob, f"/up/{bob}")
    gateway.handler = gateway.hang
    a, c = await pw.connect(alice), await pw.connect(carol)
    await a.send_custom(bob, "ping", {"n": 1})
    await gateway.wait_for(1, path=f"/up/{bob}")  # the push is stuck at the gateway now
    for i in range(5):
        sent = await a.send_custom(carol, "ping", {"n": i})
        got = await c.next_event("message", predicate=lambda e, s=sent: e.message["id"] == s["id"])
        assert got.message["data"] == {"n": i}


async def test_registration_is_checked(pw: World, gateway: Peer) -> None:
    uid = await pw.user("u")
    async with pw.user_rest(await pw.token(uid)) as rest:
        for url in (
            "http://127.0.0.1:1/up/x",  # another port
            f"{GATEWAY}/elsewhere/x",  # not under a gateway's path
            f"{GATEWAY}/relayx",  # a prefix of the path is not the path
            f"http://user:pw@127.0.0.1:{GATEWAY_PORT}/up/x",
            "file:///etc/passwd",
        ):
            with pytest.raises(ServerError) as err:
                await rest.register_push(url)
            assert err.value.status == 400 and err.value.details["field"] == "url", url
        with pytest.raises(ServerError) as err:
            await rest.register_push(f"{GATEWAY}/up/x", kind="apns")
        assert err.value.details == {"field": "kind"}
        first = await rest.register_push(f"{GATEWAY}/up/one", device_id="d1")
        again = await rest.register_push(f"{GATEWAY}/up/two", device_id="d1")
        assert again["endpointId"] == first["endpointId"] and again["url"].endswith("/two")
        for i in range(9):
            await rest.register_push(f"{GATEWAY}/up/{i}", device_id=f"x{i}")
        with pytest.raises(ServerError) as err:
            await rest.register_push(f"{GATEWAY}/up/11", device_id="eleventh")
        assert err.value.details["limit"] == 10
        await rest.unregister_push(first["endpointId"])
        with pytest.raises(ServerError) as err:
            await rest.unregister_push(first["endpointId"])
        assert err.value.status == 404
    with pytest.raises(ServerError) as err:  # the API key is not a device's user
        await pw.rest.register_push(f"{GATEWAY}/up/k")
    assert err.value.status == 403


async def test_erasing_a_user_drops_their_endpoints(pw: World, gateway: Peer) -> None:
    uid = await pw.user("gone")
    await register(pw, uid, f"/up/{uid}")
    await pw.rest.delete_user(uid, erase=True)
    await pw.rest.create_user(uid, "again")
    async with pw.user_rest(await pw.token(uid)) as rest:
        assert await rest.push_endpoints() == []


async def test_push_is_off_without_gateways(world: World) -> None:
    uid = await world.user("u")
    async with world.user_rest(await world.token(uid)) as rest:
        with pytest.raises(ServerError) as err:
            await rest.register_push("https://ntfy.example/up/x")
    assert err.value.status == 403 and "push-gateways" in err.value.message


async def test_a_user_connected_to_another_process_is_not_pushed(
    tmp_path: Path, gateway: Peer
) -> None:
    """Two processes on one PostgreSQL and one Redis: presence comes from Redis."""
    data_dir = tmp_path / "d"
    args = [
        "--rate-limit", "0", "--database-url", cluster().database(str(data_dir.resolve())),
        "--redis-url", redis_server().url(5), "--push-gateways", f"{GATEWAY}/up/",
    ]  # fmt: skip
    key = "test-key-" + uuid.uuid4().hex[:8]
    servers = [
        ServerProcess(data_dir=data_dir, port=free_port(), api_key=key, args=args) for _ in "ab"
    ]
    try:
        for srv in servers:  # B starts on A's data dir: the same JWT secret and keys
            srv.start()
        async with world_on(servers[0]) as wa, world_on(servers[1]) as wb:
            alice, bob, carol = await wa.user("alice"), await wa.user("bob"), await wa.user("c")
            await register(wa, bob, f"/up/{bob}")
            await register(wa, carol, f"/up/{carol}")
            a = await wa.connect(alice)
            b = await wb.connect(bob)  # on the other process only
            sent = await a.send_custom(bob, "ping", {"n": 1})
            await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
            # Carol, offline everywhere, is pushed after bob's job was handled (one queue).
            late = await a.send_custom(carol, "ping", {"n": 2})
            (req,) = await gateway.wait_for(1, path=f"/up/{carol}")
            assert req.json()["messageId"] == late["id"]
            assert pushes_to(gateway, f"/up/{bob}") == []
    finally:
        for srv in servers:
            srv.stop()
