"""Fixes from the outside probe (issue 10) that concern accounts, open sockets and HTTP:
a demoted admin, an erased uid created again, a soft-deleted user's GDPR rights, a typing
flood, silent and slowloris sockets, and security headers. All against the real server."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from client.sdk import ParleyClient, ServerError
from tests.conftest import ServerProcess, World, unique, world_on


async def test_a_demoted_admin_loses_staff_powers_on_an_open_socket(world: World) -> None:
    admin, bob, carol = (
        await world.user("adm", role="admin"),
        await world.user(),
        await world.user(),
    )
    boss = await world.connect(admin)
    sender = await world.connect(bob)
    first = await sender.send_custom(carol, "note", {})
    second = await sender.send_custom(carol, "note", {})
    assert (await boss.delete(first["id"]))["deletedAt"] > 0  # staff may delete anyone's

    await world.rest.update_user(admin, role="user")
    with pytest.raises(ServerError) as info:
        await boss.delete(second["id"])  # the same socket, opened while still an admin
    assert info.value.code == "ERR_FORBIDDEN"
    assert (await world.rest.get_message(second["id"]))["deletedAt"] == 0


async def test_an_erased_uids_old_token_does_not_open_the_new_account(world: World) -> None:
    uid = await world.user("reborn")
    old_token = await world.token(uid)
    await world.rest.delete_user(uid, erase=True)
    await world.rest.create_user(uid, "Someone else")

    refused = ParleyClient(world.server.ws_url, old_token)
    with pytest.raises(ServerError) as info:
        await refused.connect()
    assert info.value.code == "ERR_AUTH_INVALID"
    async with world.user_rest(old_token) as rest:
        with pytest.raises(ServerError) as info:
            await rest.blocked_users()
    assert info.value.status == 401
    async with world.user_rest(await world.token(uid)) as rest:  # a new token works
        assert await rest.blocked_users() == []


async def test_a_soft_deleted_user_can_be_exported_and_erased(world: World) -> None:
    uid, peer = await world.user("gone"), await world.user()
    sent = await (await world.connect(uid)).send_custom(peer, "note", {"keep": "me"})
    await world.rest.delete_user(uid)
    with pytest.raises(ServerError) as info:
        await world.rest.create_user(uid, "again")  # the uid stays taken until erased
    assert info.value.status == 409

    export = await world.rest.export_user(uid)
    assert export["user"]["deletedAt"] > 0
    assert [m["id"] for m in export["messages"]] == [sent["id"]]

    await world.rest.delete_user(uid, erase=True)
    with pytest.raises(ServerError) as info:
        await world.rest.export_user(uid)
    assert info.value.status == 404
    await world.rest.create_user(uid, "a new account")


async def test_a_typing_flood_is_coalesced_and_never_closes_readers(world: World) -> None:
    owner, flooder, reader = await world.user("o"), await world.user("f"), await world.user("r")
    guid = unique("typing")
    await world.rest.create_group(guid, "typing", owner=owner)
    await world.rest.add_member(guid, flooder)
    await world.rest.add_member(guid, reader)
    listening = await world.connect(reader)
    flood = await world.connect(flooder)
    frame = '{"type":"typing","receiver":"%s","receiverType":"group","state":"%s"}'
    for i in range(2000):
        await flood.send_raw(frame % (guid, "start" if i % 2 else "end"))
    await flood.ping()  # every frame before it was handled
    await listening.ping()  # and everything forwarded is queued before the pong
    got = [e for e in listening.drain() if e.type == "typing"]
    # A token bucket of 5 per second, bursts of 10: a flood that took well under a minute
    # cannot pass more than a few dozen.
    assert 1 <= len(got) <= 60, len(got)
    said = await flood.send_custom(guid, "n", {}, receiver_type="group")
    assert (await listening.next_event("message")).message["id"] == said["id"]


@pytest.fixture(scope="module")
def impatient_server(server_factory: type[ServerProcess]) -> ServerProcess:
    """A server that gives each request head 1 second."""
    return server_factory(  # type: ignore[call-arg]
        "--rate-limit", "0", env={"PARLEY_HTTP_HEAD_TIMEOUT": "1"}
    )


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_silent_and_slowloris_sockets_are_closed(impatient_server: ServerProcess) -> None:
    addr = ("127.0.0.1", impatient_server.port)
    with socket.create_connection(addr) as silent, socket.create_connection(addr) as slow:
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(4):  # a header line every 0.4 s never completes the head
            time.sleep(0.4)
            try:
                slow.sendall(b"X-a: b\r\n")
            except OSError:
                break
        assert _closed_within(slow, 3.0)
        assert _closed_within(silent, 3.0)
        assert time.monotonic() - started < 6.0
    # A prompt client is served as before, and keep-alive reuse still works.
    with httpx.Client(base_url=impatient_server.url) as http:
        assert http.get("/healthz").status_code == 200
        assert http.get("/healthz").status_code == 200


async def test_the_head_deadline_does_not_touch_websockets(
    impatient_server: ServerProcess,
) -> None:
    async with world_on(impatient_server) as w:
        client = await w.connect(await w.user())
        await asyncio.sleep(1.6)  # past the 1-second head deadline
        await client.ping()


@pytest.mark.parametrize("path", ["/", "/dashboard", "/static/app.js", "/api/v1/users/x"])
def test_security_headers(server: ServerProcess, path: str) -> None:
    response = httpx.get(server.url + path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_allowed_hosts_refuse_a_rebound_name(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--allowed-hosts", "127.0.0.1,chat.example.com")  # type: ignore[call-arg]
    assert httpx.get(srv.url + "/healthz").status_code == 200
    assert httpx.get(srv.url + "/healthz", headers={"Host": "chat.example.com"}).status_code == 200
    assert httpx.get(srv.url + "/healthz", headers={"Host": "evil.example"}).status_code == 400
