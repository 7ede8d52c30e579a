"""The images a message view carries, for the detectors and providers that look at images.

``images_of``: an image message's uploaded image, or a video's sampled frames (the view's
``media``, decoded by the server off the event loop); else an image inline in the message's
``data``: ``{"image": "<base64>"}``, ``{"imageBase64": ...}`` or a ``data:image/...;base64,``
URL under ``image``, ``url`` or ``dataUrl``. A remote URL is never fetched. Standard library
only.
"""

from __future__ import annotations

import base64
import binascii

from moderation.types import Frame, MessageView

MAX_IMAGE_BYTES = 10 * 1024 * 1024
_KEYS = ("image", "imageBase64", "dataUrl", "url")


def image_bytes(message: MessageView) -> bytes | None:
    """The image carried by ``message.data`` (base64 or a base64 data URL), if any."""
    data = message.data
    if not isinstance(data, dict):
        return None
    for key in _KEYS:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            continue
        if value.startswith("data:"):
            header, _, value = value.partition(",")
            if ";base64" not in header or not header[5:].startswith("image/"):
                continue
        elif key == "url":
            continue  # a remote URL: never fetched
        if len(value) > MAX_IMAGE_BYTES * 4 // 3 + 4:
            continue
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


#: Leading bytes of the image formats a data URL may be built for.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff_image_type(raw: bytes) -> str | None:
    """The MIME type of PNG, JPEG, GIF or WebP bytes, from their leading bytes; else None."""
    for magic, mime in _MAGIC:
        if raw.startswith(magic):
            return mime
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


async def images_of(message: MessageView) -> list[Frame]:
    """What the image detectors look at: the uploaded media's frames (one for an image, the
    sampled frames of a video, none for audio or a file), else the inline image of
    ``data``, else nothing. Raises what decoding the media raised."""
    if message.media is not None:
        return list(await message.media.frames())
    raw = image_bytes(message)
    if raw is None:
        return []
    return [Frame(raw, sniff_image_type(raw) or "application/octet-stream")]


def frame_data_url(frame: Frame) -> str | None:
    """``frame`` as a ``data:`` URL (for providers that take images inline), or None when it
    is not of a known image format."""
    mime = sniff_image_type(frame.data)
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(frame.data).decode('ascii')}"


def frame_label(frame: Frame) -> str:
    """Where a frame is, for a verdict's reason: `` at 12.0 s`` for a video frame, else ''."""
    return "" if frame.at is None else f" at {frame.at:.1f} s"


def image_data_url(message: MessageView) -> str | None:
    """The message's image as a ``data:`` URL with its sniffed type (for providers that take
    images inline), or None when it carries no image of a known format."""
    raw = image_bytes(message)
    mime = sniff_image_type(raw) if raw else None
    if raw is None or mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
