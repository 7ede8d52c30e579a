"""Known-bad images (condition kind ``image_hash``): a frame near a listed perceptual hash.

A condition names an ``image_hashes`` list (``listId``) and a ``maxDistance`` in bits (default
``DEFAULT_HASH_DISTANCE``, 10 of 64). Every frame the image detectors look at (the uploaded
image, a video's sampled frames, an inline image of a custom message: ``images_of``) is
hashed with ``moderation.phash``; the condition matches when any frame lies within
``maxDistance`` of a listed hash. The detection's category is the list id, its confidence
1.0, its reason ``known image: distance 3/64 to list <id>`` (plus `` at 12.0 s`` for a video
frame); ``parse_reason`` reads the list id and distance back (the server's quarantine).

Hashing a 1024-pixel frame takes a few milliseconds; it runs in one worker thread, off the
event loop. An empty list (a fresh server's ``known-bad-images``) rules the kind out before
any frame is decoded. Media that cannot be decoded leaves the condition undecided.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from moderation.detectors.base import EXPENSIVE, DetectContext, Detector
from moderation.errors import DetectorError, Undecided
from moderation.image_data import frame_label, image_bytes, images_of
from moderation.phash import HashIndex, phash_bytes
from moderation.rules import DEFAULT_HASH_DISTANCE, Condition, WordList
from moderation.types import Detection, Frame, MessageView

NAME = "image_hash"
LIST_KIND = "image_hashes"
_REASON_RE = re.compile(r"known image: distance (\d+)/64 to list (\S+)")


def reason_of(distance: int, list_id: str, where: str = "") -> str:
    """The detection reason for a frame ``distance`` bits from a hash of ``list_id``."""
    return f"known image: distance {distance}/64 to list {list_id}{where}"


def parse_reason(reason: str) -> tuple[str, int] | None:
    """``(list id, distance)`` from a reason written by ``reason_of``, else None."""
    found = _REASON_RE.search(reason)
    return None if found is None else (found.group(2), int(found.group(1)))


def frame_hashes(frames: list[Frame]) -> list[tuple[int, Frame]]:
    """Each frame's pHash (blocking)."""
    return [(phash_bytes(frame.data), frame) for frame in frames]


class ImageHashDetector(Detector):
    """Detector for ``image_hash`` conditions."""

    name = NAME
    # Decoding the frames is the cost (the hash itself is a few ms): never inline on send.
    cost = EXPENSIVE
    reads: frozenset[str] = frozenset()
    list_kinds: tuple[str, ...] = (LIST_KIND,)

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-phash")
        self._indexes: dict[str, tuple[tuple[str, ...], HashIndex]] = {}

    def _index(self, wl: WordList) -> HashIndex:
        cached = self._indexes.get(wl.id)
        if cached is not None and cached[0] is wl.items:
            return cached[1]
        index = HashIndex(int(item, 16) for item in wl.items)
        self._indexes[wl.id] = (wl.items, index)
        return index

    def prepare(self, lists: Mapping[str, WordList]) -> None:
        for wl in lists.values():
            if wl.kind == LIST_KIND:
                self._index(wl)

    def rules_out(self, message: MessageView, lists: Mapping[str, WordList]) -> bool:
        if message.media is None and image_bytes(message) is None:
            return True
        if message.media is not None and message.media.kind not in ("image", "video"):
            return True
        return not any(wl.kind == LIST_KIND and wl.items for wl in lists.values())

    async def detect(
        self, message: MessageView, condition: Condition, ctx: DetectContext
    ) -> list[Detection]:
        wl = ctx.lists.get(condition.list_id or "")
        if wl is None or wl.kind != LIST_KIND or not wl.items:
            return []
        raw = condition.param("maxDistance", DEFAULT_HASH_DISTANCE)
        limit = raw if isinstance(raw, int) else DEFAULT_HASH_DISTANCE
        try:
            frames = await images_of(message)
        except Exception as exc:  # media that cannot be decoded: held, never approved
            raise Undecided(self.name, f"the media could not be decoded: {exc}") from exc
        if not frames:
            return []
        loop = asyncio.get_running_loop()
        try:
            hashed = await loop.run_in_executor(self._executor, frame_hashes, frames)
        except Exception as exc:
            raise DetectorError(self.name, f"image could not be hashed: {exc}") from exc
        index = self._index(wl)
        best: tuple[int, Frame] | None = None
        for value, frame in hashed:
            nearest = index.nearest(value)
            if nearest is not None and (best is None or nearest < best[0]):
                best = (nearest, frame)
        if best is None or best[0] > limit:
            return []
        distance, frame = best
        return [Detection(self.name, wl.id, 1.0, reason_of(distance, wl.id, frame_label(frame)))]
