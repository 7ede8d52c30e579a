"""Type detection, allow-lists and file names (server/media/kinds.py), the multipart reader
(server/media/upload.py) and image re-encoding (server/media/images.py)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from server.errors import BadRequest, TooLarge, UnsupportedMedia
from server.media import images
from server.media.kinds import (
    MAX_NAME_BYTES,
    Kind,
    TypeRefused,
    claimed_kind,
    detect,
    sanitize_name,
    with_extension,
)
from server.media.upload import FilePart, MultipartReader, boundary_of


def png_bytes(size: tuple[int, int] = (8, 8), **save: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format="PNG", **save)  # type: ignore[arg-type]
    return out.getvalue()


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (32, 24), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated 90 degrees
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 29.0)
    gps[3] = "E"
    gps[4] = (2.0, 17.0, 40.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    ("head", "kind", "mime"),
    [
        (png_bytes(), Kind.IMAGE, "image/png"),
        (jpeg_with_gps(), Kind.IMAGE, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 40, Kind.IMAGE, "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 20, Kind.IMAGE, "image/webp"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40, Kind.VIDEO, "video/mp4"),
        (b"\x1aE\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm" + b"\x00" * 40, Kind.VIDEO, "video/webm"),
        (b"ID3\x03\x00" + b"\x00" * 40, Kind.AUDIO, "audio/mpeg"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 40, Kind.AUDIO, "audio/wav"),
        (b"hello, world\n", Kind.FILE, "text/plain"),
        (b"<html><script>alert(1)</script>", Kind.FILE, "text/plain"),
        (b"%PDF-1.7\n" + b"\x00" * 40, Kind.FILE, "application/pdf"),
        (b"\x00\x01\x02\xff" * 10, Kind.FILE, "application/octet-stream"),
        (png_bytes(), Kind.FILE, "image/png"),
    ],
)
def test_detect_allowed(head: bytes, kind: Kind, mime: str) -> None:
    assert detect(head, kind) == mime


@pytest.mark.parametrize(
    ("head", "kind", "detected"),
    [
        (b"<!DOCTYPE html><html><script>alert(1)</script>", Kind.IMAGE, "text/html"),
        (b"  <svg onload=alert(1)>", Kind.IMAGE, "image/svg+xml or XML"),
        (b"#!/bin/sh\nrm -rf /\n", Kind.IMAGE, "a script"),
        (b"%PDF-1.7\n" + b"\x00" * 40, Kind.IMAGE, "application/pdf"),
        (png_bytes(), Kind.VIDEO, "image/png"),
        (b"", Kind.IMAGE, "text/plain"),
        (b"\x00\x01\x02", Kind.AUDIO, "unknown"),
    ],
)
def test_detect_refused(head: bytes, kind: Kind, detected: str) -> None:
    with pytest.raises(TypeRefused) as info:
        detect(head, kind)
    assert info.value.detected == detected
    assert kind.value in str(info.value)


@pytest.mark.parametrize(
    ("declared", "name", "kind"),
    [
        ("image/png", "x.bin", Kind.IMAGE),
        ("application/octet-stream", "a.JPG", Kind.IMAGE),
        (None, "song.mp3", Kind.AUDIO),
        ("video/mp4", "x", Kind.VIDEO),
        ("text/html", "x.html", Kind.FILE),
        (None, "noext", Kind.FILE),
    ],
)
def test_claimed_kind(declared: str | None, name: str, kind: Kind) -> None:
    assert claimed_kind(declared, name) is kind


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("photo.png", "photo.png"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\evil.dll", "evil.dll"),
        ("C:\\Users\\me\\cat.jpg", "cat.jpg"),
        ("..", "file"),
        ("...", "file"),
        (".hidden", "hidden"),
        ("a..b...c", "a.b.c"),
        ("evil\u202egnp.exe", "evilgnp.exe"),  # right-to-left override
        ("new\nline\x00.txt", "newline.txt"),
        ('a<b>c:d"e|f?g*h.txt', "a_b_c_d_e_f_g_h.txt"),
        ("", "file"),
        ("  spaced  .txt ", "spaced  .txt"),
    ],
)
def test_sanitize_name(raw: str, clean: str) -> None:
    assert sanitize_name(raw) == clean


def test_sanitize_name_caps_length_keeping_extension() -> None:
    name = sanitize_name("\u00e9" * 400 + ".jpeg")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".jpeg")


@pytest.mark.parametrize(
    ("name", "mime", "out"),
    [
        ("a.png", "image/png", "a.png"),
        ("a.png", "image/jpeg", "a.jpg"),
        ("a.jpeg", "image/jpeg", "a.jpeg"),
        ("page.html", "image/png", "page.png"),
        ("noext", "audio/mpeg", "noext.mp3"),
        ("doc.pdf", "application/pdf", "doc.pdf"),
    ],
)
def test_with_extension(name: str, mime: str, out: str) -> None:
    assert with_extension(name, mime) == out


# ------------------------------------------------------------------ multipart


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()
        self.part: FilePart | None = None

    def open(self, part: FilePart) -> Collect:
        self.part = part
        return self

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def body(boundary: str, parts: list[tuple[str, str | None, str | None, bytes]]) -> bytes:
    out = b""
    for name, filename, ctype, content in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n".encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("piece", [1, 7, 1000, 1 << 20])
def test_multipart_streams_the_file_part(piece: int) -> None:
    content = bytes(range(256)) * 40 + b"\r\n--notboundary\r\n"
    raw = body("XyZ", [("caption", None, None, b"hi"), ("file", "a.bin", "x/y", content)])
    sink = Collect()
    reader = MultipartReader(boundary_of("multipart/form-data; boundary=XyZ"), sink.open)
    for i in range(0, len(raw), piece):
        reader.feed(raw[i : i + piece])
    reader.finish()
    assert bytes(sink.data) == content
    assert sink.part == FilePart("a.bin", "x/y")
    assert reader.fields == {"caption": "hi"}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (body("B", [("other", None, None, b"x")]), BadRequest),
        (body("B", [("file", "a", None, b"1"), ("file", "b", None, b"2")]), BadRequest),
        (body("B", [("f", None, None, b"x" * 2000)]), TooLarge),
        (b'--B\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc', BadRequest),
        (b"garbage", BadRequest),
    ],
)
def test_multipart_refusals(raw: bytes, error: type[Exception]) -> None:
    reader = MultipartReader(b"B", Collect().open)
    with pytest.raises(error):
        reader.feed(raw)
        reader.finish()


@pytest.mark.parametrize(
    "ctype", ["application/json", "multipart/form-data", "text/plain; boundary=x", ""]
)
def test_boundary_required(ctype: str) -> None:
    with pytest.raises(UnsupportedMedia):
        boundary_of(ctype)


# ------------------------------------------------------------------ images


def reencode(data: bytes, mime: str, max_pixels: int = 10_000_000) -> tuple[bytes, Image.Image]:
    out = io.BytesIO()
    _, first = images.reencode(io.BytesIO(data), mime, out, max_pixels=max_pixels)
    return out.getvalue(), first


def test_exif_and_gps_are_stripped_and_orientation_applied() -> None:
    src = jpeg_with_gps()
    assert Image.open(io.BytesIO(src)).getexif().get_ifd(0x8825)
    out, _ = reencode(src, "image/jpeg")
    image = Image.open(io.BytesIO(out))
    assert not image.getexif()
    assert b"Exif" not in out
    assert image.size == (24, 32)  # the 90-degree orientation applied to the pixels


def test_png_text_chunks_are_dropped() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "SECRET-LOCATION")
    out, _ = reencode(png_bytes(pnginfo=info), "image/png")
    assert b"SECRET-LOCATION" not in out


def test_polyglot_payload_is_dropped() -> None:
    payload = b"PK\x03\x04<script>alert('polyglot')</script>"
    out, _ = reencode(png_bytes() + payload, "image/png")
    assert b"polyglot" not in out and b"PK\x03\x04" not in out
    assert out.endswith(b"IEND\xaeB`\x82")


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding() -> None:
    with pytest.raises(images.ImageRefused) as info:
        reencode(_bomb_png(100_000, 100_000), "image/png")
    assert info.value.too_large


def test_not_an_image_refused() -> None:
    with pytest.raises(images.ImageRefused) as info:
        reencode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")
    assert not info.value.too_large


def test_animated_gif_keeps_its_frames() -> None:
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "green", "blue")]
    src = io.BytesIO()
    frames[0].save(src, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out, _ = reencode(src.getvalue(), "image/gif")
    assert getattr(Image.open(io.BytesIO(out)), "n_frames", 1) == 3


def test_thumbnail_fits_the_box() -> None:
    _, first = reencode(png_bytes((1000, 500)), "image/png")
    out = io.BytesIO()
    thumb = images.thumbnail(first, out)
    assert (thumb.mime, thumb.width, thumb.height) == ("image/jpeg", 320, 160)
    assert Image.open(io.BytesIO(out.getvalue())).size == (320, 160)
