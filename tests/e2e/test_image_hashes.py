"""Known-bad image lists end to end (issue 12 item 7): a real server, real images, a real
webhook receiver on 127.0.0.1.

A moderator uploads a photo-like synthetic picture to an ``image_hashes`` list; copies of it
(resized to 50% and 150%, re-encoded as JPEG quality 60, cropped 5% on every side) sent as
image messages are disapproved and their uploads quarantined: never served, to the sender
neither (403, ``details.reason: quarantined``), the ``media.quarantined`` event arrives, and
only an admin or the API key deletes them. An unrelated picture passes. A video whose frames
show the listed picture is caught on its frames.
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

from client.sdk import ParleyClient
from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.peer import Peer
from tests.e2e.test_media import account_of, link_signer
from tests.e2e.test_outgoing_webhooks import Receiver, eventually, hook
from tests.moderation.test_phash import crop, photo

needs_av = pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="needs PyAV")


def encode(img: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    img.convert("RGB").save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def hash_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture
async def w(hash_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(hash_server) as world:
        yield world


def http(w: World, **auth: str) -> httpx.AsyncClient:
    """A client on the API; ``api_key=True``-like: pass ``key`` or ``token``."""
    headers = {}
    if "key" in auth:
        headers["X-API-Key"] = auth["key"]
    if "token" in auth:
        headers["Authorization"] = f"Bearer {auth['token']}"
    return httpx.AsyncClient(base_url=w.server.url + "/api/v1", headers=headers, timeout=30)


def multipart(data: bytes, name: str = "x.png") -> dict[str, Any]:
    return {"files": {"file": (name, data, "application/octet-stream")}}


async def known_list(w: World, sender: str, original: Image.Image, **condition: Any) -> str:
    """A fresh ``image_hashes`` list holding ``original`` (uploaded), and a block rule on it for
    ``sender``'s image and video messages; the list id."""
    list_id = unique("bad-images")
    await w.rest.create_list({"id": list_id, "kind": "image_hashes", "items": []})
    async with http(w, key=w.server.api_key) as api:
        added = await api.post(f"/moderation/lists/{list_id}/images", **multipart(encode(original)))
        assert added.status_code == 201, added.text
        body = added.json()
        assert body["added"] == len(body["hashes"]) >= 1 and body["hash"] == body["hashes"][0]
        assert body["list"]["items"] == body["hashes"]
        again = await api.post(f"/moderation/lists/{list_id}/images", **multipart(encode(original)))
        assert again.status_code == 200 and again.json()["added"] == 0
    await w.rest.create_rule(
        {
            "id": unique("known-bad"),
            "name": "known bad",
            "filters": {"sender": {"uids": [sender]}},
            "conditions": [
                {
                    "kind": "image_hash",
                    "messageTypes": ["image", "video"],
                    "listId": list_id,
                    **condition,
                }
            ],
            "actions": ["block"],
        }
    )
    return list_id


async def send_and_judge(
    w: World, client: ParleyClient, sender: str, receiver: str, data: bytes, name: str, kind: str
) -> tuple[dict[str, Any], Any]:
    async with w.user_rest(await w.token(sender)) as rest:
        up = await rest.upload(data, name=name)
    sent = await client.send_media(receiver, up["mediaId"], kind)
    verdict = await client.next_event(
        "message.moderated", timeout=30, predicate=lambda e: e.message["id"] == sent["id"]
    )
    return sent, verdict


async def test_listed_image_copies_are_blocked_quarantined_and_deletable_by_admins(
    w: World,
) -> None:
    receiver = Receiver()
    async with Peer(receiver) as peer:
        await w.rest.put_settings({"webhooks": [hook(peer.url + "/events")]})
        alice, bob = await w.user("qa"), await w.user("qb")
        mod = await w.user("qm", role="moderator")
        admin = await w.user("qadm", role="admin")
        original = photo(11, (800, 600))
        list_id = await known_list(w, alice, original)
        a = await w.connect(alice)

        copies = {
            "resize 50%": encode(original.resize((400, 300))),
            "resize 150%": encode(original.resize((1200, 900))),
            "jpeg q60": encode(original, "JPEG", quality=60),
            "crop 5%": encode(crop(original, 0.05)),
        }
        blocked: dict[str, dict[str, Any]] = {}
        for label, data in copies.items():
            sent, verdict = await send_and_judge(w, a, alice, bob, data, "copy.png", "image")
            assert verdict.message["moderationStatus"] == "disapproved", label
            assert "known image" in verdict.data["moderation"]["reason"], label
            blocked[label] = sent
        unrelated, verdict = await send_and_judge(
            w, a, alice, bob, encode(photo(12, (800, 600))), "other.png", "image"
        )
        assert verdict.message["moderationStatus"] == "approved"

        # Never served, to anyone: the sender's own link, a receiver's, the media object.
        sent = blocked["jpeg q60"]
        media_id = sent["attachment"]["mediaId"]
        async with w.user_rest(await w.token(alice)) as rest_a:
            [mine] = [
                m for m in await rest_a.history(sent["conversationId"]) if m["id"] == sent["id"]
            ]
        async with httpx.AsyncClient(base_url=w.server.url) as raw:
            refused = await raw.get(mine["attachment"]["url"])
            assert refused.status_code == 403
            assert refused.json()["details"]["reason"] == "quarantined"
            exp = int(time.time()) + 600
            token = link_signer(w.server).sign(
                media_id, "original", bob, account_of(w.server, bob), exp
            )
            theirs = await raw.get(f"/media/{media_id}?token={token}")  # a valid link for bob
            assert theirs.status_code == 403
            assert theirs.json()["details"]["reason"] == "quarantined"
        async with http(w, token=await w.token(alice)) as api:
            got = await api.get(f"/media/{media_id}")
            assert got.status_code == 403 and got.json()["details"]["reason"] == "quarantined"
        # The unrelated picture is served as usual.
        async with w.user_rest(await w.token(alice)) as rest_a:
            fresh = await rest_a.media(unrelated["attachment"]["mediaId"])
            assert await rest_a.download(fresh["url"])

        # The event, one per quarantined upload.
        async def all_quarantined() -> bool:
            return len(receiver.of("media.quarantined")) >= len(copies)

        await eventually(all_quarantined, timeout=20)
        events = {e["data"]["mediaId"]: e["data"] for e in receiver.of("media.quarantined")}
        for sent in blocked.values():
            data = events[sent["attachment"]["mediaId"]]
            assert data["messageId"] == sent["id"] and data["listId"] == list_id
            assert data["uploader"] == alice and 0 <= data["distance"] <= 10
        assert receiver.bad_signatures == 0

        # Kept encrypted for evidence until an admin deletes it.
        blob = w.server.data_dir / "media" / media_id[1:3] / media_id
        assert blob.exists()
        for who in (alice, mod):
            async with http(w, token=await w.token(who)) as api:
                assert (await api.delete(f"/media/{media_id}")).status_code == 403
        assert blob.exists()
        async with http(w, key=w.server.api_key) as api:
            assert (await api.delete(f"/media/{media_id}")).status_code == 204
            assert (await api.delete(f"/media/{media_id}")).status_code == 404
        assert not blob.exists()
        other = blocked["crop 5%"]["attachment"]["mediaId"]
        async with http(w, token=await w.token(admin)) as api:
            assert (await api.delete(f"/media/{other}")).status_code == 204
        entries = (await w.rest.audit())["entries"]
        actions = {(e.get("action"), e.get("target")) for e in entries}
        assert ("media.delete", media_id) in actions and ("media.quarantine", media_id) in actions


async def test_list_uploads_are_validated_and_staff_only(w: World) -> None:
    alice = await w.user("qv")
    list_id = unique("bad-images")
    await w.rest.create_list({"id": list_id, "kind": "image_hashes", "items": []})
    words = unique("words")
    await w.rest.create_list({"id": words, "kind": "keywords", "items": ["zorp"]})
    picture = encode(photo(3, (200, 150)))
    async with http(w, token=await w.token(alice)) as api:
        denied = await api.post(f"/moderation/lists/{list_id}/images", **multipart(picture))
        assert denied.status_code == 403
    async with http(w, key=w.server.api_key) as api:
        wrong = await api.post(f"/moderation/lists/{words}/images", **multipart(picture))
        assert wrong.status_code == 400
        missing = await api.post("/moderation/lists/nope/images", **multipart(picture))
        assert missing.status_code == 404
        html = await api.post(
            f"/moderation/lists/{list_id}/images", **multipart(b"<html><script>", "a.png")
        )
        assert html.status_code == 415
        bad_hex = await api.put(
            f"/moderation/lists/{list_id}", json={"kind": "image_hashes", "items": ["12xz"]}
        )
        assert bad_hex.status_code == 400 and bad_hex.json()["details"]["field"] == "items[0]"
        direct = await api.put(
            f"/moderation/lists/{list_id}",
            json={"kind": "image_hashes", "items": ["ABCDEF0123456789"]},
        )
        assert direct.status_code == 200 and direct.json()["items"] == ["abcdef0123456789"]
    # The default list and rule of a fresh server: present, the rule enabled, the list empty.
    default = await w.rest.request("GET", "/moderation/lists/known-bad-images")
    assert default["kind"] == "image_hashes" and default["items"] == []
    rule = await w.rest.request("GET", "/moderation/rules/known-bad-images")
    assert rule["enabled"] and rule["conditions"][0]["kind"] == "image_hash"


def mp4_showing(picture: Image.Image, seconds: float = 3.0, fps: int = 4) -> bytes:
    """A short MPEG-4 video: half a second of blue, then ``picture``."""
    import av

    out = io.BytesIO()
    blue = Image.new("RGB", (320, 240), (10, 120, 200))
    shown = picture.convert("RGB").resize((320, 240))
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(int(seconds * fps)):
            image = blue if index < fps // 2 else shown
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


@needs_av
async def test_a_video_showing_a_listed_image_is_caught_on_its_frames(w: World) -> None:
    alice, bob = await w.user("qva"), await w.user("qvb")
    original = photo(21, (640, 480))
    await known_list(w, alice, original)
    a = await w.connect(alice)
    video = await asyncio.to_thread(mp4_showing, original, 8.0)
    sent, verdict = await send_and_judge(w, a, alice, bob, video, "clip.mp4", "video")
    assert verdict.message["moderationStatus"] == "disapproved"
    assert "known image" in verdict.data["moderation"]["reason"]
    async with w.user_rest(await w.token(alice)) as rest_a:
        with pytest.raises(Exception, match="quarantined"):
            await rest_a.media(sent["attachment"]["mediaId"])


async def test_a_moderator_overturning_a_match_lifts_the_quarantine(w: World) -> None:
    """A false positive of a hash list: the moderator approves the message, the receiver gets
    it with a link that serves, and the release is audited and sent as an event."""
    receiver = Receiver()
    async with Peer(receiver) as peer:
        await w.rest.put_settings({"webhooks": [hook(peer.url + "/events")]})
        alice, bob = await w.user("ra"), await w.user("rb")
        original = photo(21, (640, 480))
        await known_list(w, alice, original)
        a, b = await w.connect(alice), await w.connect(bob)
        sent, verdict = await send_and_judge(
            w, a, alice, bob, encode(original, "JPEG", quality=80), "holiday.jpg", "image"
        )
        assert verdict.message["moderationStatus"] == "disapproved"
        media_id = sent["attachment"]["mediaId"]
        async with http(w, token=await w.token(alice)) as api:
            assert (await api.get(f"/media/{media_id}")).status_code == 403
        await b.expect_no_event("message", within=0.2)

        await w.rest.approve(sent["id"])
        delivered = await b.next_event(
            "message", timeout=10, predicate=lambda e: e.message["id"] == sent["id"]
        )
        async with w.user_rest(await w.token(bob)) as rest_b:
            assert await rest_b.download(delivered.message["attachment"]["url"])
        async with http(w, token=await w.token(alice)) as api:
            assert (await api.get(f"/media/{media_id}")).status_code == 200

        async def released() -> bool:
            return any(e["data"]["mediaId"] == media_id for e in receiver.of("media.released"))

        await eventually(released, timeout=20)
        [event] = [e for e in receiver.of("media.released") if e["data"]["mediaId"] == media_id]
        assert event["data"]["messageId"] == sent["id"] and event["data"]["by"] == "api-key"
        entries = (await w.rest.audit())["entries"]
        assert any(
            e["action"] == "media.release" and e["target"] == media_id and e["actor"] == "api-key"
            for e in entries
        )


async def test_erasure_keeps_quarantined_evidence_away_from_a_reused_uid(w: World) -> None:
    """GDPR erasure deletes the account's files but keeps a quarantined one as evidence, never
    served, and not the property of a new account created under the same uid."""
    alice, bob = await w.user("ea"), await w.user("eb")
    original = photo(31, (640, 480))
    await known_list(w, alice, original)
    a = await w.connect(alice)
    bad, verdict = await send_and_judge(w, a, alice, bob, encode(original), "bad.png", "image")
    assert verdict.message["moderationStatus"] == "disapproved"
    fine, verdict = await send_and_judge(
        w, a, alice, bob, encode(photo(32, (640, 480))), "fine.png", "image"
    )
    assert verdict.message["moderationStatus"] == "approved"
    await a.close()
    evidence, ordinary = bad["attachment"]["mediaId"], fine["attachment"]["mediaId"]
    blob = w.server.data_dir / "media" / evidence[1:3] / evidence
    other = w.server.data_dir / "media" / ordinary[1:3] / ordinary
    assert blob.exists() and other.exists()

    await w.rest.delete_user(alice, erase=True)
    assert blob.exists() and not other.exists()
    async with http(w, key=w.server.api_key) as api:
        assert (await api.delete(f"/media/{ordinary}")).status_code == 404  # its row went too

    # The uid is taken again by someone else: nothing of the earlier account is theirs.
    await w.rest.create_user(alice, "Someone new")
    export = await w.rest.export_user(alice)
    assert export["media"] == []
    await w.rest.delete_user(alice, erase=True)
    assert blob.exists()
    async with http(w, key=w.server.api_key) as api:
        assert (await api.delete(f"/media/{evidence}")).status_code == 204
    assert not blob.exists()
