"""Images: decode, re-encode without metadata, thumbnail (Pillow). Runs in a worker thread.

Re-encoding from decoded pixels is what defuses polyglots (a valid image followed by a zip or
a script): only pixels are written back. Metadata is dropped, EXIF with its GPS position
included; the EXIF orientation is applied to the pixels first, so the picture still stands
the right way up. The ICC colour profile is kept. The pixel count is checked from the header,
before anything is decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from PIL import Image, ImageOps, ImageSequence

#: Thumbnails fit in this box (CSS pixels on a 2x screen for a 160 px bubble).
THUMB_BOX = (320, 320)
#: Animated images: at most this many frames are kept.
MAX_FRAMES = 500

#: Served type -> (Pillow decoder, Pillow encoder, save options).
_FORMATS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "image/jpeg": ("JPEG", "JPEG", {"quality": 90}),
    "image/png": ("PNG", "PNG", {}),
    "image/gif": ("GIF", "GIF", {}),
    "image/webp": ("WEBP", "WEBP", {"quality": 90}),
}


class ImageRefused(Exception):
    """The image cannot be accepted; ``too_large`` for a pixel (decompression) bomb."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int


@dataclass(frozen=True)
class Thumbnail:
    mime: str
    width: int
    height: int


def reencode(
    source: IO[bytes], mime: str, out: IO[bytes], *, max_pixels: int
) -> tuple[ImageInfo, Image.Image]:
    """Decode ``source`` (of the detected type ``mime``) and write it to ``out`` as the same
    type, without metadata. Returns its size and the first frame (for the thumbnail).

    Raises ``ImageRefused`` for an image that does not decode as ``mime``, or that has more
    than ``max_pixels`` pixels (over all frames).
    """
    decoder, encoder, options = _FORMATS[mime]
    try:
        image = Image.open(source, formats=[decoder])
    except Image.DecompressionBombError as exc:
        raise ImageRefused(str(exc), too_large=True) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRefused(f"not a valid {decoder} image ({exc})") from None
    with image:
        width, height = image.size
        frames = min(getattr(image, "n_frames", 1), MAX_FRAMES)
        if width <= 0 or height <= 0 or width * height * frames > max_pixels:
            raise ImageRefused(
                f"the image has {width}x{height} pixels x {frames} frames, more than the"
                f" {max_pixels} allowed",
                too_large=True,
            )
        try:
            if frames > 1:
                first = _save_animated(image, encoder, out, frames, options)
            else:
                first = _save_still(image, encoder, out, options)
        except Image.DecompressionBombError as exc:
            raise ImageRefused(str(exc), too_large=True) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageRefused(f"the image could not be decoded ({exc})") from None
    return ImageInfo(first.width, first.height), first


def _clean(frame: Image.Image, icc: bytes | None) -> Image.Image:
    """A copy of the pixels with no metadata but the colour profile."""
    frame.load()
    clean = frame.copy()
    info: dict[str | tuple[int, int], Any] = {
        k: v for k, v in frame.info.items() if k in ("transparency", "duration", "loop")
    }
    if icc:
        info["icc_profile"] = icc
    clean.info = info
    return clean


def _save_still(
    image: Image.Image, encoder: str, out: IO[bytes], options: dict[str, Any]
) -> Image.Image:
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)  # applies the orientation tag, drops it
    clean = _clean(upright, icc)
    if encoder == "JPEG" and clean.mode not in ("L", "RGB", "CMYK"):
        clean = clean.convert("RGB")
    extra: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if "transparency" in clean.info:
        extra["transparency"] = clean.info["transparency"]
    clean.save(out, format=encoder, exif=b"", **options, **extra)
    return clean


def _save_animated(
    image: Image.Image, encoder: str, out: IO[bytes], frames: int, options: dict[str, Any]
) -> Image.Image:
    icc = image.info.get("icc_profile")
    kept = [
        _clean(frame, icc)
        for _, frame in zip(range(frames), ImageSequence.Iterator(image), strict=False)
    ]
    durations = [f.info.get("duration", 100) for f in kept]
    extra: dict[str, Any] = {"loop": image.info.get("loop", 0), "duration": durations}
    if encoder in ("PNG", "WEBP") and icc:
        extra["icc_profile"] = icc
    kept[0].save(
        out, format=encoder, save_all=True, append_images=kept[1:], exif=b"", **options, **extra
    )
    return kept[0]


def thumbnail(image: Image.Image, out: IO[bytes]) -> Thumbnail:
    """Write a thumbnail of ``image`` that fits ``THUMB_BOX``: PNG when it has transparency,
    else JPEG."""
    thumb = image.copy()
    thumb.thumbnail(THUMB_BOX)
    alpha = thumb.mode in ("RGBA", "LA", "PA") or "transparency" in thumb.info
    if alpha:
        thumb = thumb.convert("RGBA")
        thumb.info = {}
        thumb.save(out, format="PNG")
        return Thumbnail("image/png", thumb.width, thumb.height)
    thumb = thumb.convert("RGB")
    thumb.info = {}
    thumb.save(out, format="JPEG", quality=80)
    return Thumbnail("image/jpeg", thumb.width, thumb.height)
