"""The image a message view carries, for the detectors and providers that look at images.

Media upload is not implemented yet, so the image comes from the message's ``data``:
``{"image": "<base64>"}``, ``{"imageBase64": ...}`` or a ``data:image/...;base64,`` URL under
``image``, ``url`` or ``dataUrl``. A remote URL is never fetched. Standard library only.
"""

from __future__ import annotations

import base64
import binascii

from moderation.types import MessageView

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


def image_data_url(message: MessageView) -> str | None:
    """The message's image as a ``data:`` URL with its sniffed type (for providers that take
    images inline), or None when it carries no image of a known format."""
    raw = image_bytes(message)
    mime = sniff_image_type(raw) if raw else None
    if raw is None or mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
