"""The Custom API provider end to end: a real webhook on 127.0.0.1 that approves, blocks,
hangs, fails and answers garbage; the exact payload, the signature, the context window, the
action on error, the circuit breaker and isolation from other conversations."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.responses import JSONResponse, PlainTextResponse, Response

from client.sdk import ParleyClient, ServerError
from moderation.providers.signing import verify
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.peer import Peer, Recorded

SECRET = "whsec-custom-api-test"


@pytest.fixture(scope="module")
def capi_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture
async def w(capi_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(capi_server) as world:
        yield world


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    async with Peer() as p:
        yield p


def answer(matching: bool, confidence: float, reason: str = "") -> Any:
    async def handler(request: Recorded) -> Response:
        return JSONResponse(
            {"isMatchingCondition": matching, "confidence": confidence, "reason": reason}
        )

    return handler


async def configure(world: World, peer: Peer, **api: Any) -> None:
    body = {
        "url": peer.url + "/hook",
        "secret": SECRET,
        "contextWindow": 2,
        "timeoutMs": 300,
        "actionOnError": "allow",
        "breakerFailures": 100,
        **api,
    }
    await world.rest.put_settings({"customApi": body})


async def api_rule(world: World, sender: str, *, threshold: float | None = None) -> str:
    rule_id = unique("capi")
    condition: dict[str, Any] = {"kind": "custom_api", "messageTypes": ["text"]}
    if threshold is not None:
        condition["threshold"] = threshold
    await world.rest.create_rule(
        {
            "id": rule_id,
            "name": "Custom API " + rule_id,
            "filters": {"sender": {"uids": [sender]}},
            "conditions": [condition],
            "actions": ["block"],
        }
    )
    return rule_id


async def verdict_of(client: ParleyClient, sent: dict[str, Any], timeout: float = 5.0) -> Any:
    return await client.next_event(
        "message.moderated", timeout=timeout, predicate=lambda e: e.message["id"] == sent["id"]
    )


async def test_approve_sends_signed_payload_with_context_window(w: World, peer: Peer) -> None:
    peer.handler = answer(False, 0.1, "fine")
    await configure(w, peer, contextWindow=2)
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a, b = await w.connect(alice), await w.connect(bob)
    for sender, client, text in ((a, a, "one"), (b, b, "two"), (a, a, "three")):
        receiver = bob if client is a else alice
        sent = await sender.send_text(receiver, text)
        assert (await verdict_of(client, sent)).message["moderationStatus"] == "approved"
    sent = await a.send_text(bob, "four")
    assert (await verdict_of(a, sent)).message["moderationStatus"] == "approved"
    got = await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    assert got.message["text"] == "four"

    request = peer.requests[-1]
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert list(body) == ["contextMessages"]
    context = body["contextMessages"]
    assert context[:-1] == [{bob: "two"}, {alice: "three"}]
    assert list(context[-1]) == [alice]
    full = context[-1][alice]
    assert full == sent  # the Message object of PROTOCOL.md, as message.sent carried it
    assert full["moderationStatus"] == "pending"
    # The signature: HMAC-SHA256(secret, f"{timestamp}.{raw body}"), hex, prefixed "v1=".
    ts = request.headers["x-parley-timestamp"]
    assert abs(int(ts) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), f"{ts}.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-parley-signature"] == "v1=" + expected.hexdigest()
    assert verify(SECRET, ts, request.headers["x-parley-signature"], request.body)
    assert not verify("wrong", ts, request.headers["x-parley-signature"], request.body)


async def test_context_window_zero_sends_only_the_message(w: World, peer: Peer) -> None:
    peer.handler = answer(False, 0.0)
    await configure(w, peer, contextWindow=0)
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a = await w.connect(alice)
    for text in ("one", "two"):
        sent = await a.send_text(bob, text)
        await verdict_of(a, sent)
    context = peer.requests[-1].json()["contextMessages"]
    assert len(context) == 1 and context[0][alice]["text"] == "two"


async def test_block_uses_confidence_and_threshold(w: World, peer: Peer) -> None:
    peer.handler = answer(True, 0.9, "mentions a competitor")
    await configure(w, peer)
    alice, carol, bob = await w.user("alice"), await w.user("carol"), await w.user("bob")
    rule_id = await api_rule(w, alice)
    await api_rule(w, carol, threshold=0.95)
    a, c, b = await w.connect(alice), await w.connect(carol), await w.connect(bob)
    blocked = await a.send_text(bob, "buy from them instead")
    v = await verdict_of(a, blocked)
    assert v.message["moderationStatus"] == "disapproved"
    assert v.data["moderation"]["ruleId"] == rule_id
    assert v.data["moderation"]["reason"] == "custom_api: mentions a competitor"
    passed = await c.send_text(bob, "buy from them instead")
    assert (await verdict_of(c, passed)).message["moderationStatus"] == "approved"
    got = await b.next_event("message")
    assert got.message["id"] == passed["id"]  # the blocked one never arrived


async def test_hanging_webhook_times_out_and_does_not_stall_others(w: World, peer: Peer) -> None:
    peer.handler = peer.hang
    await configure(w, peer, actionOnError="block", timeoutMs=300, maxConcurrency=2)
    alice, bob, carol, dave = [await w.user(p) for p in ("alice", "bob", "carol", "dave")]
    await api_rule(w, alice)
    a, c = await w.connect(alice), await w.connect(carol)
    started = time.monotonic()
    hung = [await a.send_text(bob, f"hello {i}") for i in range(6)]
    other = await c.send_text(dave, "meanwhile, elsewhere")
    v_other = await verdict_of(c, other)
    assert v_other.message["moderationStatus"] == "approved"
    other_at = time.monotonic() - started
    verdicts = [await verdict_of(a, s) for s in hung]
    assert all(v.message["moderationStatus"] == "disapproved" for v in verdicts)
    reason = verdicts[0].data["moderation"]["reason"]
    assert "custom_api error (timeout)" in reason and "300 ms" in reason
    # The other conversation waited at most about one provider timeout, not all six.
    assert other_at < 1.5
    assert time.monotonic() - started < 5


async def test_http_500_with_allow_approves_and_is_counted(
    w: World, peer: Peer, capi_server: ServerProcess
) -> None:
    async def fail(request: Recorded) -> Response:
        return PlainTextResponse("boom", status_code=500)

    peer.handler = fail
    await configure(w, peer, actionOnError="allow")
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a, b = await w.connect(alice), await w.connect(bob)
    sent = await a.send_text(bob, "hello there")
    assert (await verdict_of(a, sent)).message["moderationStatus"] == "approved"
    await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    assert len(peer.requests) == 1
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(capi_server.url + "/metrics")).text
    assert 'parley_provider_requests_total{outcome="http_status",provider="custom_api"}' in metrics
    assert 'parley_provider_errors_total{provider="custom_api"}' in metrics
    assert 'parley_provider_seconds_count{provider="custom_api"}' in metrics
    assert capi_server.log_path is not None
    assert "provider custom_api failed" in capi_server.log_path.read_text()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"this is not json"),
        (200, b'{"isMatchingCondition": "yes", "confidence": 0.5}'),
        (200, b'{"isMatchingCondition": true, "confidence": 7}'),
        (200, b"[1, 2, 3]"),
    ],
)
async def test_garbage_answer_with_block_disapproves(
    w: World, peer: Peer, status: int, body: bytes
) -> None:
    async def garbage(request: Recorded) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    peer.handler = garbage
    await configure(w, peer, actionOnError="block")
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a = await w.connect(alice)
    sent = await a.send_text(bob, "hello")
    v = await verdict_of(a, sent)
    assert v.message["moderationStatus"] == "disapproved"
    assert "custom_api error (bad_response)" in v.data["moderation"]["reason"]


async def test_circuit_breaker_opens_and_fails_fast(w: World, peer: Peer) -> None:
    async def fail(request: Recorded) -> Response:
        return PlainTextResponse("down", status_code=503)

    peer.handler = fail
    await configure(w, peer, actionOnError="block", breakerFailures=2, breakerResetMs=60_000)
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a = await w.connect(alice)
    reasons = []
    for i in range(4):
        sent = await a.send_text(bob, f"attempt {i}")
        v = await verdict_of(a, sent)
        assert v.message["moderationStatus"] == "disapproved"
        reasons.append(v.data["moderation"]["reason"])
    assert len(peer.requests) == 2  # the open breaker answered the last two at once
    assert "http_status" in reasons[0] and "HTTP 503" in reasons[0]
    assert all("circuit_open" in r for r in reasons[2:])


async def test_settings_mask_the_secret_and_keep_it(w: World, peer: Peer) -> None:
    peer.handler = answer(False, 0.0)
    await configure(w, peer)
    shown = await w.rest.get_settings()
    assert shown["customApi"]["secret"] == "********"
    assert SECRET not in str(shown)
    # Sending the masked value back (as a form would) keeps the stored secret.
    again = await w.rest.put_settings({"customApi": {**shown["customApi"], "timeoutMs": 400}})
    assert again["customApi"]["timeoutMs"] == 400 and again["customApi"]["secret"] == "********"
    alice, bob = await w.user("alice"), await w.user("bob")
    await api_rule(w, alice)
    a = await w.connect(alice)
    sent = await a.send_text(bob, "hello")
    await verdict_of(a, sent)
    request = peer.requests[-1]
    assert verify(
        SECRET,
        request.headers["x-parley-timestamp"],
        request.headers["x-parley-signature"],
        request.body,
    )
    bad_bodies: list[dict[str, Any]] = [
        {"url": "ftp://x"},
        {"url": peer.url, "actionOnError": "maybe"},
        {"url": peer.url, "nope": 1},
        {"url": peer.url, "contextWindow": 11},
    ]
    for bad in bad_bodies:
        with pytest.raises(ServerError) as info:
            await w.rest.put_settings({"customApi": bad})
        assert info.value.code == "ERR_BAD_REQUEST"


async def test_other_messages_unaffected_while_webhook_slow(w: World, peer: Peer) -> None:
    release = asyncio.Event()

    async def slow(request: Recorded) -> Response:
        await release.wait()
        return JSONResponse({"isMatchingCondition": False, "confidence": 0.0})

    peer.handler = slow
    await configure(w, peer, timeoutMs=2000)
    alice, bob, carol, dave = [await w.user(p) for p in ("alice", "bob", "carol", "dave")]
    await api_rule(w, alice)
    a, c, d = await w.connect(alice), await w.connect(carol), await w.connect(dave)
    held = await a.send_text(bob, "waiting on the webhook")
    await peer.wait_for(1)
    for i in range(5):
        sent = await c.send_text(dave, f"quick {i}")
        await d.next_event("message", predicate=lambda e, s=sent: e.message["id"] == s["id"])
    release.set()
    assert (await verdict_of(a, held)).message["moderationStatus"] == "approved"


async def test_an_image_message_reaches_the_provider_with_a_link_it_can_fetch(
    w: World, peer: Peer
) -> None:
    """A custom_api rule on images: the payload's attachment carries absolute links, signed
    for the sender, which fetch the uploaded image while the message is still pending."""
    peer.handler = answer(True, 0.9, "a picture of a competitor's logo")
    await configure(w, peer, contextWindow=0)
    alice, bob = await w.user("alice"), await w.user("bob")
    rule_id = unique("capi-img")
    await w.rest.create_rule(
        {
            "id": rule_id,
            "name": "Custom API on images",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [{"kind": "custom_api", "messageTypes": ["image"]}],
            "actions": ["block"],
        }
    )
    a = await w.connect(alice)
    picture = io.BytesIO()
    Image.new("RGB", (120, 90), "purple").save(picture, "PNG")
    async with w.user_rest(await w.token(alice)) as rest_a:
        up = await rest_a.upload(picture.getvalue(), name="logo.png")
    sent = await a.send_media(bob, up["mediaId"], "image")
    verdict = await verdict_of(a, sent)
    assert verdict.message["moderationStatus"] == "disapproved"
    assert "competitor" in verdict.data["moderation"]["reason"]

    [request] = [r for r in peer.requests if r.path == "/hook"]
    [item] = request.json()["contextMessages"]
    attachment = item[alice]["attachment"]
    assert attachment["mediaId"] == up["mediaId"] and attachment["mimeType"] == "image/png"
    assert attachment["url"].startswith(w.server.url + "/media/")
    async with httpx.AsyncClient() as raw:
        got = await raw.get(attachment["url"])
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(got.content)).size == (120, 90)
        thumb = await raw.get(attachment["thumbnailUrl"])
        assert thumb.status_code == 200
