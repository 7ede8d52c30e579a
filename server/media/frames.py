"""What moderation looks at of an upload: an image's pixels, or a video's sampled frames.

Runs in a worker thread on a decrypting ``BlobReader`` (plaintext only in memory). Frames
are scaled down to ``MAX_SIDE`` pixels and encoded as JPEG: the local detector looks at
224x224 anyway, and a provider is sent a few hundred KB, not the 20 MB original.

- An image gives one frame; an animated one (GIF, APNG, WebP) up to ``max_frames`` frames
  spread over its length, each with its time.
- A video (the ``video`` extra, PyAV): the poster (the first frame), then one frame every
  ``interval`` seconds, at most ``max_frames`` in all, each with its time. Without PyAV a
  video cannot be looked at: ``FramesUnavailable`` (the detector then holds the message for
  review rather than approving what it did not see).
- Audio and files give no frames: nothing looks at them.
"""

from __future__ import annotations

import io
import logging
from typing import IO, Any

from PIL import Image, ImageSequence

from moderation.types import Frame
from server.media import video

log = logging.getLogger(__name__)

#: Frames are scaled to fit this many pixels on their longer side.
MAX_SIDE = 1024
JPEG_QUALITY = 88


class FramesUnavailable(Exception):
    """The media's frames cannot be produced (no PyAV for a video, undecodable content)."""


def _jpeg(image: Image.Image, at: float | None) -> Frame:
    picture = image.convert("RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return Frame(out.getvalue(), "image/jpeg", None if at is None else round(at, 1))


def image_frames(source: IO[bytes], max_frames: int) -> list[Frame]:
    """One frame for a still image; up to ``max_frames`` spread over an animated one."""
    with Image.open(source) as image:
        count = getattr(image, "n_frames", 1)
        if count <= 1:
            return [_jpeg(image, None)]
        step = max(1, -(-count // max(1, max_frames)))  # ceil: at most max_frames
        frames: list[Frame] = []
        at = 0.0
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index % step == 0 and len(frames) < max_frames:
                frames.append(_jpeg(frame, at))
            at += float(frame.info.get("duration", 0) or 0) / 1000
        return frames


def video_frames(source: IO[bytes], interval: float, max_frames: int) -> list[Frame]:
    """The poster, then one frame every ``interval`` seconds, at most ``max_frames``."""
    av = video.av_module()
    if av is None:
        raise FramesUnavailable("video frames need the 'video' extra (PyAV)")
    try:
        with av.open(source, mode="r") as container:
            if not container.streams.video:
                return []
            stream = container.streams.video[0]
            duration = container.duration / 1_000_000 if container.duration else None
            return _sample(container, stream, duration, interval, max_frames)
    except FramesUnavailable:
        raise
    except Exception as exc:  # PyAV raises its own error tree
        raise FramesUnavailable(f"the video could not be decoded: {exc}") from None


def _sample(
    c: Any, s: Any, duration: float | None, interval: float, max_frames: int
) -> list[Frame]:
    frames: list[Frame] = []
    if duration is None:
        # No duration to seek within: decode in order, keeping one frame per interval.
        due = 0.0
        for frame in c.decode(s):
            at = float(frame.time or 0.0)
            if at + 1e-3 >= due:
                frames.append(_jpeg(frame.to_image(), at))
                due = at + interval
                if len(frames) >= max_frames:
                    break
        return frames
    targets = [0.0]
    while len(targets) < max_frames and targets[-1] + interval < duration:
        targets.append(targets[-1] + interval)
    time_base = s.time_base
    start = s.start_time or 0
    for target in targets:
        if target > 0:
            c.seek(start + int(target / time_base), stream=s)
        for frame in c.decode(s):
            at = float(frame.time or 0.0)
            if at + 1e-3 >= target:
                if not frames or at > (frames[-1].at or 0.0) + 1e-3:
                    frames.append(_jpeg(frame.to_image(), at))
                break
    return frames
