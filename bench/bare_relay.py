"""Baseline B: the thinnest relay on Parley's own stack, speaking Parley's frames.

Starlette + uvicorn (websockets-sansio), no auth, no storage, no moderation. It speaks the
subset of the Parley wire contract that ``bench/load.py`` uses, so the identical generator
drives both servers:

- ``GET /healthz`` -> 200.
- ``POST /api/v1/users`` -> 201 (nothing stored); ``POST /api/v1/users/{uid}/tokens`` ->
  ``{"token": uid}`` (the token *is* the uid); ``POST /api/v1/groups`` and
  ``POST /api/v1/groups/{guid}/members`` fill an in-memory member map. No API key check.
- ``/ws``: the first frame ``{"type": "auth", "token": t}`` is answered ``auth.ok`` with no
  check (uid = token). ``message.send`` is answered ``message.sent`` (status
  ``unmoderated``) and forwarded as ``message`` to the receiver's connections (or every
  group member's but the sender's). ``ping`` -> ``pong``. Anything else is ignored.

Run: ``python bench/bare_relay.py --port 8799``. Bound to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

conns: dict[str, list[Any]] = {}  # uid -> send_text callables of that user's connections
groups: dict[str, list[str]] = {}  # guid -> member uids
_ids = itertools.count(1)
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


async def healthz(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def create_user(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"uid": body.get("uid"), "name": body.get("name")}, status_code=201)


async def issue_token(request: Request) -> JSONResponse:
    uid = request.path_params["uid"]
    return JSONResponse({"token": uid, "expiresAt": int(time.time()) + 3600}, status_code=201)


async def create_group(request: Request) -> JSONResponse:
    body = await request.json()
    guid = body["guid"]
    members = groups.setdefault(guid, [])
    owner = body.get("owner")
    if owner and owner not in members:
        members.append(owner)
    return JSONResponse({"guid": guid}, status_code=201)


async def add_member(request: Request) -> JSONResponse:
    body = await request.json()
    members = groups.setdefault(request.path_params["guid"], [])
    if body["uid"] not in members:
        members.append(body["uid"])
    return JSONResponse({"ok": True}, status_code=201)


async def ws_endpoint(ws: WebSocket) -> None:
    await ws.accept()
    send = ws.send_text
    try:
        first = json.loads(await ws.receive_text())
    except (WebSocketDisconnect, ValueError):
        return
    uid = str(first.get("token") or ws.query_params.get("uid") or "")
    auth_ok: dict[str, Any] = {"type": "auth.ok", "user": {"uid": uid, "name": uid}}
    if first.get("id") is not None:
        auth_ok["id"] = first["id"]
    await send(_dumps(auth_ok))
    mine = conns.setdefault(uid, [])
    mine.append(send)
    try:
        while True:
            frame = json.loads(await ws.receive_text())
            kind = frame.get("type")
            if kind == "message.send":
                await _relay(uid, send, frame)
            elif kind == "ping":
                await send(_dumps({"type": "pong", "id": frame.get("id")}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        mine.remove(send)
        if not mine and conns.get(uid) is mine:
            del conns[uid]


async def _relay(uid: str, send: Any, frame: dict[str, Any]) -> None:
    receiver = frame.get("receiver")
    receiver_type = frame.get("receiverType", "user")
    now = int(time.time())
    if receiver_type == "group":
        cid = f"group_{receiver}"
    else:
        a, b = sorted((uid, str(receiver)))
        cid = f"{a}_user_{b}"
    message = {
        "id": next(_ids),
        "muid": frame.get("muid"),
        "conversationId": cid,
        "sender": uid,
        "receiver": receiver,
        "receiverType": receiver_type,
        "category": frame.get("category", "message"),
        "type": frame.get("messageType", "text"),
        "text": frame.get("text"),
        "attachment": None,
        "data": frame.get("data"),
        "metadata": frame.get("metadata") or {},
        "tags": frame.get("tags") or [],
        "parentId": frame.get("parentId"),
        "sentAt": now,
        "updatedAt": now,
        "editedAt": 0,
        "deletedAt": 0,
        "moderationStatus": "unmoderated",
    }
    sent: dict[str, Any] = {"type": "message.sent", "message": message}
    if frame.get("id") is not None:
        sent = {"type": "message.sent", "id": frame["id"], "message": message}
    await send(_dumps(sent))
    out = _dumps({"type": "message", "message": message})
    if receiver_type == "group":
        for member in groups.get(str(receiver), ()):
            if member != uid:
                for dst in conns.get(member, ()):
                    await dst(out)
    else:
        for dst in conns.get(str(receiver), ()):
            await dst(out)


def build_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/api/v1/users", create_user, methods=["POST"]),
            Route("/api/v1/users/{uid}/tokens", issue_token, methods=["POST"]),
            Route("/api/v1/groups", create_group, methods=["POST"]),
            Route("/api/v1/groups/{guid}/members", add_member, methods=["POST"]),
            WebSocketRoute("/ws", ws_endpoint),
        ]
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    p.add_argument("--port", type=int, default=8799)
    p.add_argument(
        "--ws",
        default="websockets-sansio",
        choices=["websockets-sansio", "websockets", "wsproto"],
        help="uvicorn's WebSocket implementation (to compare the transports)",
    )
    args = p.parse_args()
    # The same uvicorn settings as ``parley serve`` (server/cli.py): sansio websockets,
    # 64 KiB frames, no permessage-deflate, 20 s pings, default loop and HTTP choice.
    config = uvicorn.Config(
        build_app(),
        host=args.host,
        port=args.port,
        ws=args.ws,
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
