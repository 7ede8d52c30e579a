"""Media kinds, their allow-lists, type detection from content, and file-name sanitising.

Pure functions. The type of an upload comes from its first bytes (``filetype``'s magic
numbers), never from its name or declared type: those only say which *kind* the client
means (``image``, ``video``, ``audio`` or ``file``), which picks the size limit and the
allow-list the content must then pass.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

import filetype

#: How many leading bytes type detection looks at (``filetype`` reads up to 8 KiB).
SNIFF_BYTES = 8192
#: The longest file name kept, in UTF-8 bytes (the common file-system limit).
MAX_NAME_BYTES = 255


class Kind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"


#: Detected type -> the type served, per kind. Images are re-encoded (Pillow), so only types
#: Pillow writes back; an APNG is a PNG. Anything else claimed as image/video/audio is refused.
ALLOWED: dict[Kind, dict[str, str]] = {
    Kind.IMAGE: {
        "image/jpeg": "image/jpeg",
        "image/png": "image/png",
        "image/apng": "image/png",
        "image/gif": "image/gif",
        "image/webp": "image/webp",
    },
    Kind.VIDEO: {
        "video/mp4": "video/mp4",
        "video/x-m4v": "video/mp4",
        "video/quicktime": "video/quicktime",
        "video/webm": "video/webm",
    },
    Kind.AUDIO: {
        "audio/mpeg": "audio/mpeg",
        "audio/ogg": "audio/ogg",
        "audio/x-wav": "audio/wav",
        "audio/x-flac": "audio/flac",
        "audio/aac": "audio/aac",
        "audio/mp4": "audio/mp4",
        "video/mp4": "audio/mp4",  # an .m4a often carries the generic MP4 brand
        "video/webm": "audio/webm",  # what browsers' MediaRecorder produces
    },
}

#: File extensions, for the kind a client means when it names no kind and declares no type.
_EXT_KIND = {
    **dict.fromkeys(("jpg", "jpeg", "png", "apng", "gif", "webp"), Kind.IMAGE),
    **dict.fromkeys(("mp4", "m4v", "mov", "webm", "mkv"), Kind.VIDEO),
    **dict.fromkeys(("mp3", "ogg", "oga", "opus", "wav", "flac", "m4a", "aac", "weba"), Kind.AUDIO),
}
#: The extension a served type gets when the uploaded name's does not match it.
EXTENSION = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/flac": "flac",
    "audio/aac": "aac",
    "audio/mp4": "m4a",
    "audio/webm": "webm",
}
_SAME_EXT = {"jpeg": "jpg", "oga": "ogg", "opus": "ogg", "m4v": "mp4", "weba": "webm"}


class TypeRefused(Exception):
    """The content is not of an allowed type for the claimed kind (answered 415)."""

    def __init__(self, message: str, detected: str) -> None:
        super().__init__(message)
        self.detected = detected


def parse_kind(value: str) -> Kind | None:
    try:
        return Kind(value)
    except ValueError:
        return None


def claimed_kind(declared_type: str | None, name: str) -> Kind:
    """The kind a client means: from the part's declared type, else the name's extension.

    Only a hint: it chooses the size limit and the allow-list, never the served type.
    """
    major = (declared_type or "").split("/", 1)[0].strip().lower()
    if major in ("image", "video", "audio"):
        return Kind(major)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _EXT_KIND.get(ext, Kind.FILE)


def _describe(head: bytes) -> str:
    """A label for content no magic number matched, for the error message."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n\f").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script")):
        return "text/html"
    if text.startswith((b"<svg", b"<?xml")):
        return "image/svg+xml or XML"
    if text.startswith(b"#!"):
        return "a script"
    if _is_text(head):
        return "text/plain"
    return "unknown"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sniffed head is still text.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def detect(head: bytes, kind: Kind) -> str:
    """The type to serve for content starting with ``head``, if ``kind`` allows it.

    Raises ``TypeRefused`` when the content is not one of the kind's allowed types (a script
    or page claiming to be a PNG, say). Files take any content: a known magic number gives
    its type, other UTF-8 text is ``text/plain`` (never ``text/html``: files are always
    served as attachments, with ``nosniff``), the rest ``application/octet-stream``.
    """
    guess = filetype.guess(head[:SNIFF_BYTES]) if head else None
    found = guess.mime if guess is not None else None
    if kind is Kind.FILE:
        if found is not None:
            return str(found)
        return "text/plain" if _is_text(head) else "application/octet-stream"
    allowed = ALLOWED[kind]
    if found is not None and found in allowed:
        return allowed[found]
    what = found or _describe(head)
    raise TypeRefused(
        f"the content is {what}, not an allowed {kind.value} type"
        f" ({', '.join(sorted(set(allowed.values())))})",
        what,
    )


_CONTROL = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}  # Cf: bidi overrides such as U+202E
_RESERVED = re.compile(r'[<>:"|?*\\/]')


def sanitize_name(raw: str, *, fallback: str = "file") -> str:
    """A safe display and download name: no path, no control or bidi characters, no ``..``.

    Keeps the last path component (browsers on Windows may send a full path), drops
    control and format characters, replaces characters file systems reserve, collapses dot
    runs and strips leading dots and spaces (no hidden or parent names), and caps it at
    ``MAX_NAME_BYTES`` bytes of UTF-8, keeping the extension.
    """
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _CONTROL)
    name = _RESERVED.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = name.strip().lstrip(". ").rstrip(". ")
    if not name:
        return fallback
    return _cap(name, MAX_NAME_BYTES)


def _cap(name: str, limit: int) -> str:
    if len(name.encode()) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, ext = name, ""
    tail = f".{ext}" if ext else ""
    budget = limit - len(tail.encode())
    cut = stem.encode()[:budget].decode("utf-8", "ignore")
    return cut + tail


def with_extension(name: str, mime: str) -> str:
    """``name`` with the extension of ``mime`` when its own does not match (images, audio,
    video: what is served is the detected type, and the saved file should say so)."""
    ext = EXTENSION.get(mime)
    if ext is None:
        return name
    stem, dot, current = name.rpartition(".")
    if dot and _SAME_EXT.get(current.lower(), current.lower()) == ext:
        return name
    base = stem if dot and stem else name
    return _cap(f"{base}.{ext}", MAX_NAME_BYTES)
