"""MediaService over the real SQLite storage and real files: export, erasure, key rotation,
the viewing policy hook and the send-side checks the messaging integration will call."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from server.crypto import KeyRing
from server.errors import BadRequest, Conflict, NotFound
from server.media.ingest import MediaLimits
from server.media.links import LinkSigner, derive_link_key
from server.media.service import MediaService
from server.models import User
from server.storage.sqlite import SqliteStorage, key_ids_in_use
from server.storage.types import Audit

LIMITS = MediaLimits(image=1 << 20, audio=1 << 20, video=1 << 20, file=1 << 20, max_pixels=10**7)


def user(uid: str) -> User:
    return User(uid, uid.title(), "user", (), {}, 1, 1, account=f"acc-{uid}")


def multipart(name: str, ctype: str, data: bytes) -> tuple[str, AsyncIterator[bytes]]:
    raw = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n'
        b"Content-Type: %s\r\n\r\n%s\r\n--B--\r\n"
    ) % (name.encode(), ctype.encode(), data)

    async def body() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 5000):
            yield raw[i : i + 5000]

    return "multipart/form-data; boundary=B", body()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), "red").save(out, format="PNG")
    return out.getvalue()


class Env:
    def __init__(self, root: Path, ring: KeyRing) -> None:
        self.root = root
        self.store = SqliteStorage(root / "parley.db", ring)
        self.visible: set[tuple[str, int]] = set()

        async def message_visible(viewer: User, message_id: int) -> bool:
            return (viewer.uid, message_id) in self.visible

        self.media = MediaService(
            self.store.media,
            self.store.chat,
            ring,
            LinkSigner(derive_link_key("secret")),
            root=root / "media",
            limits=LIMITS,
            token_ttl=60,
            message_visible=message_visible,
        )

    async def upload(self, who: User, name: str, ctype: str, data: bytes) -> str:
        content_type, body = multipart(name, ctype, data)
        record = await self.media.upload(
            who, content_type=content_type, content_length=None, body=body
        )
        return record.id


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path, KeyRing.generate())
    await e.store.open()
    for uid in ("alice", "bob"):
        await e.store.chat.create_user(user(uid), Audit("test", "user.create", uid, {}))
    yield e
    await e.store.close()


async def read_all(env: Env, media_id: str, viewer: User, variant: str = "original") -> bytes:
    url, _ = env.media.link(media_id, viewer, variant)
    path, token = url.split("?token=")
    download = await env.media.open_download(media_id, variant, token)
    with download.open() as reader:
        return reader.read()


async def test_export_and_erase(env: Env) -> None:
    alice, bob = user("alice"), user("bob")
    a1 = await env.upload(alice, "a.txt", "text/plain", b"first")
    a2 = await env.upload(alice, "pic.png", "image/png", png())
    b1 = await env.upload(bob, "b.txt", "text/plain", b"bob's")
    exported = await env.media.export("alice")
    assert [m["mediaId"] for m in exported] == [a1, a2]
    assert exported[1]["mimeType"] == "image/png" and exported[1]["width"] == 30
    files = {p.name for p in (env.root / "media").rglob("*") if p.is_file()}
    assert {a1, a2, f"{a2}.thumb", b1} <= files

    assert await env.media.erase("alice") == 2
    assert await env.media.export("alice") == []
    files = {p.name for p in (env.root / "media").rglob("*") if p.is_file()}
    assert files == {b1}
    assert await read_all(env, b1, bob) == b"bob's"


async def test_rotation_keeps_old_blobs_readable(env: Env, tmp_path: Path) -> None:
    alice = user("alice")
    old = await env.upload(alice, "old.txt", "text/plain", b"sealed with the first key")
    first_kid = env.media._keyring.current
    await env.store.close()

    rotated = env.media._keyring.rotated()
    env2 = Env(tmp_path, rotated)
    await env2.store.open()
    try:
        new = await env2.upload(alice, "new.txt", "text/plain", b"sealed with the second key")
        assert await read_all(env2, old, alice) == b"sealed with the first key"
        assert await read_all(env2, new, alice) == b"sealed with the second key"
        kids = {(await env2.store.media.get_media(m)).kid for m in (old, new)}  # type: ignore[union-attr]
        assert kids == {first_kid, rotated.current}
    finally:
        await env2.store.close()
    # The start-up check knows the media rows need both keys.
    assert {first_kid, rotated.current} <= key_ids_in_use(tmp_path / "parley.db")
    await env.store.open()  # the fixture closes it


async def test_viewing_policy_and_sending(env: Env) -> None:
    alice, bob = user("alice"), user("bob")
    mid = await env.upload(alice, "pic.png", "image/png", png())
    record = await env.store.media.get_media(mid)
    assert record is not None
    assert await env.media.may_view(alice, record)
    assert not await env.media.may_view(bob, record)

    with pytest.raises(NotFound):  # someone else's media
        await env.media.resolve_for_send("bob", mid, "image")
    with pytest.raises(BadRequest):  # an image is no video
        await env.media.resolve_for_send("alice", mid, "video")
    attachment = await env.media.resolve_for_send("alice", mid, "image")
    assert attachment == {
        "mediaId": mid,
        "name": "pic.png",
        "mimeType": "image/png",
        "size": record.size,
    }
    await env.media.claim("alice", mid, 41)
    await env.media.claim("alice", mid, 41)  # idempotent for the same message
    with pytest.raises(Conflict):
        await env.media.claim("alice", mid, 42)
    with pytest.raises(Conflict):
        await env.media.resolve_for_send("alice", mid, "image")

    attached = await env.store.media.get_media(mid)
    assert attached is not None and attached.attached_to == 41
    assert not await env.media.may_view(bob, attached)
    assert await env.media.attachment(mid, bob) is None
    env.visible.add(("bob", 41))  # the messaging service now lets bob see message 41
    assert await env.media.may_view(bob, attached)
    shown = await env.media.attachment(mid, bob)
    assert shown is not None and ".bob." in shown["url"]
    assert await read_all(env, mid, bob, "thumbnail")
