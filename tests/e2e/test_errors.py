"""Bad input: every error code of PROTOCOL.md is reachable; bad frames keep the connection."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from client.sdk import ServerError
from tests.conftest import ServerProcess, World, unique


async def recv_json(ws: object, timeout: float = 5.0) -> dict[str, object]:
    data = await asyncio.wait_for(ws.recv(), timeout)  # type: ignore[attr-defined]
    return dict(json.loads(data))


async def closed_with(ws: object, timeout: float = 5.0) -> int | None:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)  # type: ignore[attr-defined]
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


# ------------------------------------------------------------------ authentication


async def test_first_frame_must_be_auth(server: ServerProcess) -> None:
    async with connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        err = await recv_json(ws)
        assert (err["type"], err["code"]) == ("error", "ERR_AUTH_REQUIRED")
        assert await closed_with(ws) == 4401


@pytest.mark.parametrize("kind", ["forged", "expired", "alg-none", "garbage"])
async def test_bad_tokens_close_4401(world: World, kind: str) -> None:
    uid = await world.user("t")
    now = int(time.time())
    claims = {"sub": uid, "iat": now, "exp": now + 60, "aud": "parley", "iss": "parley", "jti": "x"}
    token = {
        "forged": jwt.encode(
            claims, "not-the-server-secret-not-the-server-secret", algorithm="HS256"
        ),
        "expired": "",
        "alg-none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "garbage": "abc.def.ghi",
    }[kind]
    if kind == "expired":
        # A real server token whose payload is changed breaks the signature; so mint an
        # expired one with the server's own secret, read from its data dir.
        secret = json.loads((world.server.data_dir / "secrets.json").read_text())["jwt_secret"]
        token = jwt.encode({**claims, "exp": now - 60, "iat": now - 120}, secret, algorithm="HS256")
    async with connect(world.server.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        err = await recv_json(ws)
        assert err["code"] == "ERR_AUTH_INVALID"
        assert await closed_with(ws) == 4401
    r = httpx.get(
        world.server.url + "/api/v1/me/blocked-users", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 401 and r.json()["code"] == "ERR_AUTH_INVALID"


async def test_header_auth_and_deleted_user_closes_4403(world: World) -> None:
    uid = await world.user("gone")
    token = await world.token(uid)
    async with connect(
        world.server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        ok = await recv_json(ws)
        assert ok["type"] == "auth.ok" and ok["user"]["uid"] == uid  # type: ignore[index]
        await world.rest.delete_user(uid)
        assert await closed_with(ws) == 4403
    async with connect(world.server.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await recv_json(ws))["code"] == "ERR_FORBIDDEN"
        assert await closed_with(ws) == 4403


async def test_server_ban_closes_and_refuses(world: World) -> None:
    uid = await world.user("banned")
    c = await world.connect(uid)
    await world.rest.update_user(uid, banned=True)
    assert await c.wait_closed() == 4403


async def test_foreign_origin_is_refused(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.ws_url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403
    own = f"http://127.0.0.1:{server.port}"
    async with connect(server.ws_url, origin=own) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "auth", "token": "x"}))
        assert (await recv_json(ws))["code"] == "ERR_AUTH_INVALID"


# ------------------------------------------------------------------ frames


async def test_bad_frames_answered_and_connection_stays_open(world: World) -> None:
    alice, bob = await world.user("a"), await world.user("b")
    c = await world.connect(alice)
    cases: list[tuple[str, str]] = [
        ("{not json", "ERR_BAD_REQUEST"),
        ('"a string"', "ERR_BAD_REQUEST"),
        (json.dumps({"type": "bogus", "id": "u1"}), "ERR_UNKNOWN_TYPE"),
        (
            json.dumps(
                {
                    "type": "message.send",
                    "id": "m1",
                    "receiverType": "user",
                    "messageType": "text",
                    "text": "x",
                }
            ),
            "ERR_BAD_REQUEST",
        ),
        (
            json.dumps(
                {
                    "type": "message.send",
                    "receiver": bob,
                    "receiverType": "user",
                    "messageType": "text",
                    "text": 5,
                }
            ),
            "ERR_BAD_REQUEST",
        ),
        (
            json.dumps(
                {
                    "type": "message.send",
                    "receiver": bob,
                    "receiverType": "user",
                    "messageType": "text",
                    "text": "x" * 20_000,
                }
            ),
            "ERR_TOO_LARGE",
        ),
        (
            json.dumps(
                {
                    "type": "message.send",
                    "receiver": unique("nobody"),
                    "receiverType": "user",
                    "messageType": "text",
                    "text": "x",
                }
            ),
            "ERR_NOT_FOUND",
        ),
        (
            json.dumps(
                {
                    "type": "message.send",
                    "receiver": unique("nogroup"),
                    "receiverType": "group",
                    "messageType": "text",
                    "text": "x",
                }
            ),
            "ERR_NOT_FOUND",
        ),
        (json.dumps({"type": "message.edit", "messageId": 10**12, "text": "x"}), "ERR_NOT_FOUND"),
    ]
    for raw, code in cases:
        await c.send_raw(raw)
        ev = await c.next_event("error")
        assert ev.data["code"] == code, (raw[:80], ev.data)
    await c.ping()
    async with world.user_rest(await world.token(alice)) as r:
        assert await r.history(f"{min(alice, bob)}_user_{max(alice, bob)}") == []


async def test_error_echoes_the_frame_id(world: World) -> None:
    c = await world.connect(await world.user("a"))
    await c.send_raw(json.dumps({"type": "nope", "id": "abc"}))
    ev = await c.next_event("error")
    assert ev.data["id"] == "abc" and ev.data["code"] == "ERR_UNKNOWN_TYPE"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\x00\x01binary", 1003),
        ("x" * (70 * 1024), 1009),
    ],
    ids=["binary", "oversized"],
)
async def test_frames_that_close(world: World, payload: bytes | str, code: int) -> None:
    token = await world.token(await world.user("a"))
    async with connect(world.server.ws_url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await recv_json(ws))["type"] == "auth.ok"
        await ws.send(payload)
        assert await closed_with(ws) == code


async def test_invalid_utf8_closes_1007(world: World) -> None:
    token = await world.token(await world.user("a"))
    async with connect(world.server.ws_url) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert (await recv_json(ws))["type"] == "auth.ok"
        # A text frame whose payload is not UTF-8: write the raw frame on the transport.
        from websockets.frames import Frame, Opcode

        ws.protocol.send_frame(Frame(Opcode.TEXT, b'{"type":"ping","x":"\xff\xfe"}'))
        ws.send_data()  # type: ignore[attr-defined]
        assert await closed_with(ws) == 1007


async def test_rate_limit_answers_retry_after(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--rate-limit", "2")  # type: ignore[call-arg]
    from client.sdk import ParleyClient, RestClient

    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        await rest.create_user("rl-a", "A")
        await rest.create_user("rl-b", "B")
        async with ParleyClient(srv.ws_url, await rest.issue_token("rl-a")) as c:
            codes = []
            for i in range(60):
                try:
                    await c.send_custom("rl-b", "n", {"i": i})
                    codes.append("ok")
                except ServerError as exc:
                    codes.append(exc.code)
                    if exc.code == "ERR_RATE_LIMITED":
                        assert exc.details["retryAfterMs"] > 0
                        break
            assert codes[-1] == "ERR_RATE_LIMITED"
            # --rate-limit 2: a burst of one second's worth, then the limit.
            assert 2 <= codes.count("ok") <= 3, codes
            await c.ping()


# ------------------------------------------------------------------ REST


async def test_rest_error_statuses(world: World) -> None:
    base = world.server.url + "/api/v1"
    key = {"X-API-Key": world.server.api_key}
    async with httpx.AsyncClient() as h:
        cases = [
            (await h.get(base + "/users/x"), 401, "ERR_AUTH_REQUIRED"),
            (
                await h.get(base + "/users/x", headers={"X-API-Key": "wrong"}),
                401,
                "ERR_AUTH_INVALID",
            ),
            (await h.get(base + "/users/" + unique("none"), headers=key), 404, "ERR_NOT_FOUND"),
            (
                await h.post(
                    base + "/users",
                    headers={**key, "content-type": "application/json"},
                    content=b"{bad",
                ),
                400,
                "ERR_BAD_REQUEST",
            ),
            (
                await h.post(
                    base + "/users", headers={**key, "content-type": "text/plain"}, content=b"x"
                ),
                415,
                "ERR_BAD_REQUEST",
            ),
            (
                await h.post(base + "/users", headers=key, json={"uid": "x" * 500_000}),
                413,
                "ERR_TOO_LARGE",
            ),
            (
                await h.post(base + "/users", headers=key, json={"uid": "bad uid"}),
                400,
                "ERR_BAD_REQUEST",
            ),
        ]
        uid = await world.user("dup")
        cases.append(
            (await h.post(base + "/users", headers=key, json={"uid": uid}), 409, "ERR_CONFLICT")
        )
        token = await world.token(uid)
        cases.append(
            (
                await h.get(base + "/users/" + uid, headers={"Authorization": f"Bearer {token}"}),
                403,
                "ERR_FORBIDDEN",
            )
        )
        cases.append(
            (
                await h.get(
                    base + "/moderation/rules", headers={"Authorization": f"Bearer {token}"}
                ),
                403,
                "ERR_FORBIDDEN",
            )
        )
    for response, status, code in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["code"] == code and isinstance(body["message"], str) and "details" in body
