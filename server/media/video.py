"""Video and audio probing with PyAV, an opt-in extra (``pip install 'parley[video]'``).

PyAV ships its own FFmpeg decoders in the wheel (no system FFmpeg). Without it, videos are
stored and served as uploaded but get no poster frame, no size and no duration: ``probe``
returns None. Runs in a worker thread.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import IO, Any

from PIL import Image

log = logging.getLogger(__name__)


def _load_av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError:
        return None


_av = _load_av()

#: Whether posters and durations are available (the ``video`` extra is installed).
AVAILABLE = _av is not None


def av_module() -> Any:
    """The ``av`` module, or None without the ``video`` extra."""
    return _av


@dataclass(frozen=True)
class Probe:
    width: int | None
    height: int | None
    duration: float | None
    poster: Image.Image | None


class ProbeFailed(Exception):
    """PyAV could not open the content as audio or video."""


def probe(source: IO[bytes], *, want_poster: bool) -> Probe | None:
    """Size, duration and (``want_poster``) the first decoded frame; None without PyAV.

    Raises ``ProbeFailed`` when PyAV is installed and cannot read the content.
    """
    if _av is None:
        return None
    try:
        with _av.open(source, mode="r") as container:
            duration = round(container.duration / 1_000_000, 3) if container.duration else None
            streams = container.streams.video
            if not streams:
                return Probe(None, None, duration, None)
            stream = streams[0]
            poster = None
            if want_poster:
                for frame in container.decode(stream):
                    poster = frame.to_image()
                    break
            return Probe(stream.codec_context.width, stream.codec_context.height, duration, poster)
    except Exception as exc:  # PyAV raises its own error tree (av.FFmpegError and others)
        log.info("media probe failed: %s", exc)
        raise ProbeFailed(str(exc)) from None
