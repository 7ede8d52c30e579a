"""The OpenAI provider end to end: the official ``openai`` client in the server talks to a
real OpenAI-compatible server on 127.0.0.1 (``/v1/moderations`` and ``/v1/chat/completions``
with structured output); the server gets its base URL and a dummy key through the env."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image
from starlette.responses import JSONResponse, PlainTextResponse, Response

from client.sdk import ParleyClient, RestClient, ServerError
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.peer import Peer, Recorded
from tests.pg import stored_bytes

KEY = "sk-dummy-test-key-5f1c2a"
SCORES = {
    "MEANWORD": ("harassment", 0.8),
    "KILLWORD": ("violence", 0.95),
    "TAUNT": ("violence", 0.7),
}


def sees_nsfw(url: str) -> bool:
    """What the fake "sees" in an image: a marker in its bytes, or a skin-toned picture (the
    uploaded images of tests/e2e/test_media_messages.py, re-encoded by the server)."""
    raw = base64.b64decode(url.split(",", 1)[1])
    if b"NSFW" in raw:
        return True
    try:
        pixel = Image.open(io.BytesIO(raw)).convert("RGB").getpixel((4, 4))
    except Exception:
        return False
    assert isinstance(pixel, tuple)
    return bool(abs(pixel[0] - 224) < 12 and abs(pixel[2] - 140) < 12)


class FakeOpenAI:
    """Answers like OpenAI; ``failing`` turns every answer into HTTP 500."""

    def __init__(self) -> None:
        self.failing = False

    async def __call__(self, request: Recorded) -> Response:
        if self.failing:
            return PlainTextResponse("upstream exploded", status_code=500)
        body = request.json()
        if request.path == "/v1/moderations":
            return JSONResponse(self.moderation(body))
        if request.path == "/v1/chat/completions":
            return JSONResponse(self.completion(body))
        return JSONResponse({"error": {"message": "not found"}}, status_code=404)

    @staticmethod
    def moderation(body: dict[str, Any]) -> dict[str, Any]:
        given = body["input"]
        parts = given if isinstance(given, list) else [{"type": "text", "text": given}]
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        names = ("harassment", "hate", "self-harm", "sexual", "violence", "violence/graphic")
        scores = dict.fromkeys(names, 0.01)
        for word, (category, score) in SCORES.items():
            if word in text:
                scores[category] = score
        for url in images:  # the fake "sees" a marker inside the image bytes, or skin
            if sees_nsfw(url):
                scores["sexual"] = 0.9
        return {
            "id": "modr-test",
            "model": body["model"],
            "results": [
                {
                    "flagged": any(v >= 0.5 for v in scores.values()),
                    "categories": {k: v >= 0.5 for k, v in scores.items()},
                    "category_scores": scores,
                }
            ],
        }

    @staticmethod
    def completion(body: dict[str, Any]) -> dict[str, Any]:
        content = body["messages"][-1]["content"]
        parts = content if isinstance(content, list) else [{"type": "text", "text": content}]
        text = " ".join(p["text"] for p in parts if p["type"] == "text")
        judged = text.split("Message to judge:\n", 1)[1]
        images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        if any(sees_nsfw(url) for url in images):
            verdict = {
                "violates": True,
                "confidence": 0.88,
                "category": "explicit",
                "reason": f"nudity in image {[sees_nsfw(u) for u in images].index(True) + 1}",
            }
        elif "BUYNOW" in judged:
            verdict = {
                "violates": True,
                "confidence": 0.92,
                "category": "spam",
                "reason": "pushes a purchase link",
            }
        else:
            verdict = {"violates": False, "confidence": 0.95, "category": "none", "reason": "ok"}
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1764000000,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": json.dumps(verdict)},
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }


@pytest.fixture(scope="module")
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture(scope="module")
async def openai_peer(fake: FakeOpenAI) -> AsyncIterator[Peer]:
    async with Peer(fake) as peer:
        yield peer


@pytest.fixture(scope="module")
def oa_server(server_factory: Any, openai_peer: Peer) -> ServerProcess:
    srv: ServerProcess = server_factory(
        "--rate-limit",
        "0",
        "--log-level",
        "debug",  # even debug logs must not carry the key
        env={"PARLEY_OPENAI_BASE_URL": openai_peer.url + "/v1", "PARLEY_OPENAI_API_KEY": KEY},
    )
    return srv


@pytest.fixture
async def w(oa_server: ServerProcess, fake: FakeOpenAI) -> AsyncIterator[World]:
    fake.failing = False
    async with world_on(oa_server) as world:
        yield world


async def configure(world: World, **openai: Any) -> str:
    """Fresh OpenAI settings (a unique model name, so a fresh provider and breaker)."""
    model = unique("test-model")
    await world.rest.put_settings(
        {"openai": {"model": model, "timeoutMs": 2000, "breakerFailures": 100, **openai}}
    )
    return model


async def verdict_of(client: ParleyClient, sent: dict[str, Any]) -> Any:
    return await client.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == sent["id"]
    )


async def test_moderation_endpoint_with_per_category_thresholds(
    w: World, openai_peer: Peer
) -> None:
    await configure(w)
    alice, bob = await w.user("alice"), await w.user("bob")
    await w.rest.create_rule(
        {
            "id": unique("oa-mod"),
            "name": "OpenAI moderation",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [
                {
                    "kind": "openai",
                    "messageTypes": ["text"],
                    "categories": ["harassment"],
                    "threshold": 0.5,
                },
                {
                    "kind": "openai",
                    "messageTypes": ["text"],
                    "categories": ["violence"],
                    "threshold": 0.9,
                },
            ],
            "actions": ["block"],
        }
    )
    a = await w.connect(alice)
    expected = {
        f"you MEANWORD {alice}": ("disapproved", "harassment 0.80 >= 0.50"),
        f"a TAUNT {alice}": ("approved", None),
        f"a KILLWORD {alice}": ("disapproved", "violence 0.95 >= 0.90"),
        f"hello {alice}": ("approved", None),
    }
    for text, (status, reason) in expected.items():
        sent = await a.send_text(bob, text)
        v = await verdict_of(a, sent)
        assert v.message["moderationStatus"] == status, text
        if reason is not None:
            assert (await w.staff_reason(v.message["id"])) == reason
    requests = [r for r in openai_peer.requests if r.path == "/v1/moderations"]
    for text in expected:
        mine = [r for r in requests if r.json()["input"] == text]
        assert len(mine) == 1  # one call per message, shared by both conditions
        assert mine[0].json()["model"] == "omni-moderation-latest"
        assert mine[0].headers["authorization"] == f"Bearer {KEY}"


async def test_default_prompt_rule_uses_structured_output_and_context(
    w: World, openai_peer: Peer
) -> None:
    model = await configure(w)
    alice, bob = await w.user("alice"), await w.user("bob")
    rule = await w.rest.get_rule("openai-spam-scam")
    assert rule["enabled"] is False
    prompt = rule["conditions"][0]["prompt"]
    # A copy of the predefined rule, enabled for this test's sender, with a window of 2.
    copy_id = unique("oa-spam")
    condition = {**rule["conditions"][0], "contextWindow": 2}
    await w.rest.create_rule(
        {
            "id": copy_id,
            "name": rule["name"],
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [condition],
            "actions": rule["actions"],
        }
    )
    a = await w.connect(alice)
    for text in ("first", "second", "third"):
        sent = await a.send_text(bob, text)
        assert (await verdict_of(a, sent)).message["moderationStatus"] == "approved"
    sent = await a.send_text(bob, "BUYNOW at http://deals.example")
    v = await verdict_of(a, sent)
    assert v.message["moderationStatus"] == "disapproved"
    assert v.data["moderation"]["ruleId"] == copy_id
    assert (await w.staff_reason(v.message["id"])) == "openai (spam): pushes a purchase link"

    calls = [r for r in openai_peer.requests if r.path == "/v1/chat/completions"]
    last = calls[-1].json()
    assert calls[-1].headers["authorization"] == f"Bearer {KEY}"
    assert last["model"] == model
    fmt = last["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert set(fmt["json_schema"]["schema"]["required"]) == {
        "violates",
        "confidence",
        "category",
        "reason",
    }
    system, user = last["messages"]
    assert system["role"] == "system" and prompt in system["content"]
    assert user["content"] == (
        "Conversation so far (oldest first):\n"
        f"{alice}: second\n{alice}: third\n\n"
        f"Message to judge:\n{alice}: BUYNOW at http://deals.example"
    )


async def test_provider_error_with_block_disapproves(w: World, fake: FakeOpenAI) -> None:
    await configure(w, actionOnError="block")
    alice, bob = await w.user("alice"), await w.user("bob")
    await w.rest.create_rule(
        {
            "id": unique("oa-fail"),
            "name": "OpenAI moderation",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [{"kind": "openai", "messageTypes": ["text"], "categories": ["hate"]}],
            "actions": ["block"],
        }
    )
    a = await w.connect(alice)
    fake.failing = True
    sent = await a.send_text(bob, "hello")
    v = await verdict_of(a, sent)
    assert v.message["moderationStatus"] == "disapproved"
    assert "openai error (http_status): HTTP 500" in (await w.staff_reason(v.message["id"]))
    fake.failing = False
    await configure(w, actionOnError="allow")
    sent = await a.send_text(bob, "hello again")
    assert (await verdict_of(a, sent)).message["moderationStatus"] == "approved"


async def test_evaluate_reports_openai_scores(w: World) -> None:
    await configure(w)
    result = await w.rest.evaluate("you MEANWORD")
    scores = {
        d["category"]: d["confidence"] for d in result["detections"] if d["detector"] == "openai"
    }
    assert scores["harassment"] == pytest.approx(0.8)
    assert scores["violence"] == pytest.approx(0.01)


async def test_api_key_never_exposed(w: World, oa_server: ServerProcess) -> None:
    await configure(w)
    shown = await w.rest.get_settings()
    assert shown["openaiApiKeyConfigured"] is True
    assert KEY not in json.dumps(shown)
    with pytest.raises(ServerError) as info:
        await w.rest.put_settings({"openai": {"apiKey": "sk-other"}})
    assert info.value.code == "ERR_BAD_REQUEST"
    assert KEY not in json.dumps(await w.rest.list_rules())
    assert KEY not in json.dumps(await w.rest.audit(since=0))
    assert oa_server.log_path is not None
    assert KEY not in oa_server.log_path.read_text()
    assert KEY.encode() not in stored_bytes(oa_server.data_dir)


async def test_without_a_key_openai_rules_stay_disabled(server_factory: Any) -> None:
    srv: ServerProcess = server_factory(
        "--rate-limit", "0", env={"PARLEY_OPENAI_API_KEY": "", "OPENAI_API_KEY": ""}
    )
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        assert (await rest.get_settings())["openaiApiKeyConfigured"] is False
        rules = {r["id"]: r for r in await rest.list_rules() if r["id"].startswith("openai-")}
        assert len(rules) == 16 and not any(r["enabled"] for r in rules.values())
        image = [r for r in rules.values() if r["conditions"][0]["messageTypes"] == ["image"]]
        assert len(image) == 8
        body = {**rules["openai-hate-harassment"], "enabled": True}
        with pytest.raises(ServerError) as info:
            await rest.update_rule("openai-hate-harassment", body)
        assert info.value.code == "ERR_BAD_REQUEST" and info.value.details["field"] == "enabled"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


async def test_images_go_inline_to_the_moderation_endpoint(w: World, openai_peer: Peer) -> None:
    await configure(w)
    alice, bob = await w.user("alice"), await w.user("bob")
    await w.rest.create_rule(
        {
            "id": unique("oa-img"),
            "name": "OpenAI image moderation",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [
                {
                    "kind": "openai",
                    "messageTypes": ["photo"],
                    "categories": ["sexual"],
                    "threshold": 0.5,
                }
            ],
            "actions": ["block"],
        }
    )
    a = await w.connect(alice)
    for payload, status in ((PNG + b"NSFW", "disapproved"), (PNG + b"cat", "approved")):
        url = "data:image/png;base64," + base64.b64encode(payload).decode()
        sent = await a.send_custom(bob, "photo", {"image": url, "caption": "look"})
        assert sent["moderationStatus"] == "pending"
        assert (await verdict_of(a, sent)).message["moderationStatus"] == status
        asked = [r.json()["input"] for r in openai_peer.requests if r.path == "/v1/moderations"]
        assert {"type": "image_url", "image_url": {"url": url}} in asked[-1]
        assert {"type": "text", "text": "look"} in asked[-1]
    # Not an image (a text file dressed as one): nothing is sent, nothing matches.
    fake_png = "data:image/png;base64," + base64.b64encode(b"just text").decode()
    sent = await a.send_custom(bob, "photo", {"image": fake_png})
    assert (await verdict_of(a, sent)).message["moderationStatus"] == "approved"


async def test_uploaded_images_and_video_frames_reach_openai(w: World, openai_peer: Peer) -> None:
    from tests.e2e.test_media_messages import BLUE, SKIN, mp4, png, upload

    await configure(w)
    alice, bob = await w.user("alice"), await w.user("bob")
    await w.rest.create_rule(
        {
            "id": unique("oa-media"),
            "name": "OpenAI on uploads",
            "filters": {"sender": {"uids": [alice]}},
            "conditions": [
                {"kind": "openai", "messageTypes": ["image"], "prompt": "No nudity."},
                {
                    "kind": "openai",
                    "messageTypes": ["video"],
                    "categories": ["sexual"],
                    "threshold": 0.5,
                },
            ],
            "actions": ["block"],
        }
    )
    a = await w.connect(alice)
    # An image message: the uploaded image goes to the prompt rule as an image part.
    for color, status in ((SKIN, "disapproved"), (BLUE, "approved")):
        up = await upload(w, alice, png(color, (64, 48)), "photo.png")
        sent = await a.send_media(bob, up["mediaId"], "image", "look")
        v = await verdict_of(a, sent)
        assert v.message["moderationStatus"] == status
        asked = [r.json() for r in openai_peer.requests if r.path == "/v1/chat/completions"]
        parts = asked[-1]["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url"]
        assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        if status == "disapproved":
            assert (await w.staff_reason(v.message["id"])) == "openai (explicit): nudity in image 1"
    # A video: each sampled frame to the moderation endpoint; the worst frame is named.
    before = len([r for r in openai_peer.requests if r.path == "/v1/moderations"])
    up = await upload(w, alice, mp4([(0, BLUE), (9.5, SKIN)], 12), "clip.mp4")
    sent = await a.send_media(bob, up["mediaId"], "video")
    v = await verdict_of(a, sent)
    assert v.message["moderationStatus"] == "disapproved"
    assert (await w.staff_reason(v.message["id"])) == "sexual 0.90 at 10.0 s"
    frames = [r for r in openai_peer.requests if r.path == "/v1/moderations"][before:]
    # The poster, 5 s and 10 s; the first two are the same blue picture, asked once.
    assert len(frames) == 2
