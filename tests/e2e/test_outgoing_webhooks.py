"""Outgoing moderation webhooks end to end: a real receiver on 127.0.0.1 that checks the
signature gets every event; while it is down (refusing, then answering 503) deliveries are
retried with back-off, chat goes on unaffected, and nothing is lost, across a restart too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from client.sdk import RestClient, ServerError
from moderation.providers.signing import verify
from tests.conftest import ServerProcess, World, free_port, unique, world_on
from tests.e2e.peer import Peer, Recorded

SECRET = "whsec-outgoing-test"
PROFANE = "you are a f.u.c.k.i.n.g idiot"


class Receiver:
    """Accepts only correctly signed events; answers 503 to the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.seen = 0
        self.events: list[dict[str, Any]] = []
        self.bad_signatures = 0

    async def __call__(self, request: Recorded) -> Response:
        self.seen += 1
        if self.seen <= self.fail_first:
            return PlainTextResponse("busy", status_code=503)
        ok = verify(
            SECRET,
            request.headers.get("x-parley-timestamp"),
            request.headers.get("x-parley-signature"),
            request.body,
        )
        if not ok:
            self.bad_signatures += 1
            return PlainTextResponse("bad signature", status_code=401)
        event = request.json()
        assert request.headers["x-parley-event"] == event["type"]
        assert request.headers["x-parley-delivery"] == event["id"]
        self.events.append(event)
        return JSONResponse({"ok": True})

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` (a state in another process) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
def wh_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture
async def w(wh_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(wh_server) as world:
        yield world


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "test-hook",
        "url": url,
        "secret": SECRET,
        "events": ["*"],
        "timeoutMs": 300,
        "backoffMs": 50,
        "maxBackoffMs": 200,
        "maxAttempts": 100,
        **extra,
    }


async def keyword_rule(world: World, word: str, actions: list[str], **filters: Any) -> str:
    list_id, rule_id = unique("l"), unique("r")
    await world.rest.create_list({"id": list_id, "kind": "keywords", "items": [word]})
    await world.rest.create_rule(
        {
            "id": rule_id,
            "name": f"{actions[0]} {word}",
            "filters": filters,
            "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": list_id}],
            "actions": actions,
        }
    )
    return rule_id


async def test_every_event_arrives_signed(w: World) -> None:
    receiver = Receiver()
    async with Peer(receiver) as peer:
        dead = f"http://127.0.0.1:{free_port()}/never"
        await w.rest.put_settings(
            {
                "webhooks": [hook(peer.url + "/events")],
                "customApi": {"url": dead, "timeoutMs": 300, "actionOnError": "allow"},
            }
        )
        shown = await w.rest.get_settings()
        assert shown["webhooks"][0]["secret"] == "********" and SECRET not in str(shown)

        alice, bob, carol = [await w.user(p) for p in ("alice", "bob", "carol")]
        flag_word, review_word, ban_word = unique("flagw"), unique("revw"), unique("banw")
        await keyword_rule(w, flag_word, ["flag"])
        await keyword_rule(w, review_word, ["review"])
        await keyword_rule(w, ban_word, ["ban"])
        await w.rest.create_rule(
            {
                "id": unique("capi"),
                "name": "dead custom api",
                "filters": {"sender": {"uids": [carol]}},
                "conditions": [{"kind": "custom_api", "messageTypes": ["text"]}],
                "actions": ["block"],
            }
        )
        a, b, c = await w.connect(alice), await w.connect(bob), await w.connect(carol)

        blocked = await a.send_text(bob, PROFANE)
        flagged = await a.send_text(bob, f"hello {flag_word}")
        held = await a.send_text(bob, f"hello {review_word}")
        reported = await a.send_text(bob, "a normal message")
        await b.next_event("message", predicate=lambda e: e.message["id"] == reported["id"])
        await b.flag(reported["id"], "harassment", "keeps writing")
        guid = unique("g")
        await w.rest.create_group(guid, "Webhook group", owner=alice)
        await w.rest.add_member(guid, bob)
        banned = await b.send_text(guid, f"you {ban_word}", receiver_type="group")
        failed = await c.send_text(alice, "through a dead provider")
        for client, sent in ((b, banned), (c, failed)):
            await client.next_event(
                "message.moderated", predicate=lambda e, s=sent: e.message["id"] == s["id"]
            )

        async def all_arrived() -> bool:
            return all(
                receiver.of(t)
                for t in (
                    "message.disapproved",
                    "message.flagged",
                    "message.review_required",
                    "message.reported",
                    "user.banned",
                    "moderation.provider_failed",
                )
            )

        await eventually(all_arrived)
        assert receiver.bad_signatures == 0

        def message_ids(event_type: str) -> set[int]:
            return {e["data"]["message"]["id"] for e in receiver.of(event_type)}

        assert blocked["id"] in message_ids("message.disapproved")
        assert flagged["id"] in message_ids("message.flagged")
        assert held["id"] in message_ids("message.review_required")
        reports = [e["data"]["report"] for e in receiver.of("message.reported")]
        assert any(r["messageId"] == reported["id"] and r["reporter"] == bob for r in reports)
        bans = [e["data"] for e in receiver.of("user.banned")]
        assert any(x["uid"] == bob and x["guid"] == guid for x in bans)
        failures = [e["data"] for e in receiver.of("moderation.provider_failed")]
        assert any(
            f["provider"] == "custom_api" and f["messageId"] == failed["id"] for f in failures
        )
        disapproved = next(
            e
            for e in receiver.of("message.disapproved")
            if e["data"]["message"]["id"] == blocked["id"]
        )
        assert disapproved["data"]["moderation"]["ruleId"] == "profanity"
        assert isinstance(disapproved["createdAt"], int) and len(disapproved["id"]) == 32

        log = await w.rest.webhook_deliveries(event="message.disapproved")
        assert any(d["eventId"] == disapproved["id"] and d["status"] == "delivered" for d in log)
        assert all(d["webhookId"] == "test-hook" for d in log)

        # Bans by people, in a group and server-wide, are events too.
        await w.rest.add_member(guid, carol)
        await w.rest.ban(guid, carol, reason="manual")
        await w.rest.update_user(carol, banned=True)

        async def manual_bans() -> bool:
            got = [e["data"] for e in receiver.of("user.banned") if e["data"]["uid"] == carol]
            return {x["guid"] for x in got} >= {guid, None}

        await eventually(manual_bans)

        # Staff only.
        async with w.user_rest(await w.token(alice)) as ra:
            with pytest.raises(ServerError) as info:
                await ra.webhook_deliveries()
            assert info.value.code == "ERR_FORBIDDEN"
        await w.rest.put_settings({"webhooks": [], "customApi": None})


async def test_receiver_down_then_up_nothing_lost_chat_unaffected(w: World) -> None:
    port = free_port()
    await w.rest.put_settings({"webhooks": [hook(f"http://127.0.0.1:{port}/events")]})
    alice, bob = await w.user("alice"), await w.user("bob")
    a, b = await w.connect(alice), await w.connect(bob)
    started = time.monotonic()
    blocked = []
    for _ in range(5):
        sent = await a.send_text(bob, PROFANE)
        v = await a.next_event(
            "message.moderated", predicate=lambda e, s=sent: e.message["id"] == s["id"]
        )
        assert v.message["moderationStatus"] == "disapproved"
        blocked.append(sent["id"])
    fine = await a.send_text(bob, "still chatting")
    await b.next_event("message", predicate=lambda e: e.message["id"] == fine["id"])
    assert time.monotonic() - started < 3  # the dead receiver does not slow chat down

    async def retried() -> bool:
        log = await w.rest.webhook_deliveries(event="message.disapproved", status="pending")
        mine = [d for d in log if d["attempts"] >= 2]
        return len(mine) >= 5 and all(d["lastError"] for d in mine)

    await eventually(retried)
    receiver = Receiver(fail_first=3)  # up again, but busy at first
    async with Peer(receiver, port=port):

        async def arrived() -> bool:
            ids = {e["data"]["message"]["id"] for e in receiver.of("message.disapproved")}
            return set(blocked) <= ids

        await eventually(arrived)
    assert receiver.bad_signatures == 0
    log = await w.rest.webhook_deliveries(event="message.disapproved")
    mine = [d for d in log if d["status"] == "delivered" and d["attempts"] >= 3]
    assert len(mine) >= 5
    await w.rest.put_settings({"webhooks": []})


async def test_pending_deliveries_survive_a_restart(server_factory: Any) -> None:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    port = free_port()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        world = World(srv, rest)
        await rest.put_settings({"webhooks": [hook(f"http://127.0.0.1:{port}/events")]})
        alice, bob = await world.user("alice"), await world.user("bob")
        a = await world.connect(alice)
        ids = []
        for _ in range(2):
            sent = await a.send_text(bob, PROFANE)
            await a.next_event(
                "message.moderated", predicate=lambda e, s=sent: e.message["id"] == s["id"]
            )
            ids.append(sent["id"])

        async def tried() -> bool:
            log = await rest.webhook_deliveries(status="pending")
            return len([d for d in log if d["attempts"] >= 1]) >= 2

        await eventually(tried)
        await a.close()
        world.clients.clear()
    srv.stop()
    receiver = Receiver()
    async with Peer(receiver, port=port):
        srv.start()

        async def arrived() -> bool:
            got = {e["data"]["message"]["id"] for e in receiver.of("message.disapproved")}
            return set(ids) <= got

        await eventually(arrived)
    assert receiver.bad_signatures == 0
