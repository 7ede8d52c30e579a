"""A 64-bit perceptual hash (pHash) of an image, and nearest-hash search: Pillow and numpy only.

The definition is the published DCT pHash as the ``imagehash`` library computes it
(``imagehash.phash``, BSD-2): the image in greyscale, resized to 32x32 with Lanczos, the 2-D
type-II DCT of that, its top-left 8x8 block (the lowest frequencies, DC included), and one bit
per coefficient: set when it is above the block's median. Bits are read row by row, the first
one the most significant, and written as 16 hex digits: the same hex string ``imagehash``
prints, so hashes exported from tools built on it can be listed as they are.

Why not the library itself: ``imagehash`` imports SciPy and PyWavelets (about 110 MB
installed) for one 32x32 DCT, which a 32x32 cosine matrix does in numpy. PDQ (Meta's
256-bit hash) would be the better choice, but its PyPI package (``pdqhash``) ships no wheels,
only a C++ source distribution to compile. ``tests/moderation/test_phash.py`` checks this
implementation against SciPy's DCT when SciPy is installed, and measures how far the hash
moves under resizing, re-encoding and cropping (docs/moderation.md, "Known-bad images").

The distance between two hashes is the number of differing bits (0..64). Unrelated images
lie around 32 apart; the same picture resized or re-encoded within a few bits.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

BITS = 64
HEX_DIGITS = BITS // 4
HEX_RE = re.compile(r"\A[0-9a-f]{16}\Z")
_SIZE = 32
_LOW = 8


def _dct_rows() -> npt.NDArray[np.float64]:
    """The first 8 rows of the 32-point type-II DCT matrix (unnormalised)."""
    k = np.arange(_LOW, dtype=np.float64)[:, None]
    n = np.arange(_SIZE, dtype=np.float64)[None, :]
    return np.cos(np.pi * k * (2 * n + 1) / (2 * _SIZE))


_DCT = _dct_rows()
_WEIGHTS = np.array([1 << (BITS - 1 - i) for i in range(BITS)], dtype=np.uint64)


def phash(image: Image.Image) -> int:
    """The 64-bit pHash of ``image`` (any mode; alpha is dropped as ``convert("L")`` does)."""
    grey = image.convert("L").resize((_SIZE, _SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = _DCT @ pixels @ _DCT.T  # the top-left 8x8 of the 2-D DCT
    bits = (low > np.median(low)).flatten()
    return int(np.bitwise_or.reduce(np.where(bits, _WEIGHTS, np.uint64(0))))


#: The centre crops (fraction cut off each side) hashed besides the whole image when an image
#: is added to a list (``variant_hashes``): pHash moves ~10 bits under a 5% crop of every
#: side, but a cropped copy lies within a few bits of the listed crop nearest to it.
CROP_VARIANTS: tuple[float, ...] = (0.04, 0.08)


def _decoded(data: bytes, max_pixels: int, hashes: Callable[[Image.Image], list[int]]) -> list[int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(f"image of {width}x{height} pixels is too large")
            image.seek(0)
            return hashes(ImageOps.exif_transpose(image))
    except ValueError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, DecompressionBombError...
        raise ValueError(f"not a decodable image: {exc}") from None


def phash_bytes(data: bytes, *, max_pixels: int = 100_000_000) -> int:
    """The pHash of an encoded image (its first frame), upright per its EXIF orientation.

    Raises ``ValueError`` for data Pillow cannot decode and for images of more than
    ``max_pixels`` pixels (a decompression bomb)."""
    return _decoded(data, max_pixels, lambda image: [phash(image)])[0]


def centre_crop(image: Image.Image, fraction: float) -> Image.Image:
    """``image`` with ``fraction`` of its width and height cut off each side."""
    width, height = image.size
    dx, dy = int(width * fraction), int(height * fraction)
    return image.crop((dx, dy, width - dx, height - dy))


def variant_hashes(data: bytes, *, max_pixels: int = 100_000_000) -> list[int]:
    """The hashes listed for one image: the whole image's first, then its ``CROP_VARIANTS``
    centre crops' (duplicates dropped). ``ValueError`` as ``phash_bytes``."""

    def hashes(image: Image.Image) -> list[int]:
        found = [phash(image), *(phash(centre_crop(image, f)) for f in CROP_VARIANTS)]
        return list(dict.fromkeys(found))

    return _decoded(data, max_pixels, hashes)


def to_hex(value: int) -> str:
    """``value`` as 16 lowercase hex digits."""
    return f"{value:0{HEX_DIGITS}x}"


def from_hex(text: str) -> int:
    """A hash from its hex string (16 hex digits, either case); ``ValueError`` otherwise."""
    norm = text.strip().lower()
    if not HEX_RE.fullmatch(norm):
        raise ValueError("a pHash is 16 hex digits")
    return int(norm, 16)


def distance(a: int, b: int) -> int:
    """The number of bits in which two hashes differ (0..64)."""
    return (a ^ b).bit_count()


class HashIndex:
    """A fixed set of hashes searched by brute force: one vectorised XOR and popcount per
    query (20,000 hashes in well under a millisecond)."""

    def __init__(self, hashes: Iterable[int]) -> None:
        self._hashes = np.array(list(hashes), dtype=np.uint64)

    def __len__(self) -> int:
        return int(self._hashes.size)

    def nearest(self, value: int) -> int | None:
        """The smallest distance from ``value`` to a hash in the index; None when empty."""
        if not self._hashes.size:
            return None
        xor = np.bitwise_xor(self._hashes, np.uint64(value))
        counts = np.unpackbits(xor.view(np.uint8)).reshape(-1, BITS).sum(axis=1)
        return int(counts.min())
