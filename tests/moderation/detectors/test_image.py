"""The local image detector (Open-NSFW) on generated images; skipped without ``parley[images]``."""

from __future__ import annotations

import base64
import io

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.image import SCORED, ImageDetector, available
from moderation.errors import DetectorError
from moderation.image_data import image_bytes
from moderation.rules import Condition
from tests.moderation.conftest import build_message

COND = Condition("image", ("image",))


def test_image_bytes_from_message_data() -> None:
    raw = b"\x89PNG fake"
    b64 = base64.b64encode(raw).decode()

    def msg(data: object) -> bytes | None:
        return image_bytes(build_message(None, message_type="image", data=data))

    assert msg({"image": b64}) == raw
    assert msg({"imageBase64": b64}) == raw
    assert msg({"url": "data:image/png;base64," + b64}) == raw
    assert msg({"url": "https://example.com/cat.png"}) is None  # never fetched
    assert msg({"image": "not base64!"}) is None
    assert msg({"url": "data:text/plain;base64," + b64}) is None
    assert msg(None) is None and msg("text") is None


Image = pytest.importorskip("PIL.Image") if available() else None
needs_model = pytest.mark.skipif(not available(), reason="optional extra parley[images]")


def encoded(mode_colour: tuple[int, int, int], pattern: str = "flat") -> str:
    assert Image is not None
    img = Image.new("RGB", (320, 240), mode_colour)
    if pattern == "stripes":
        for x in range(0, 320, 20):
            for y in range(240):
                for dx in range(10):
                    img.putpixel((x + dx, y), (20, 40, 200))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@needs_model
async def test_generated_benign_images_score_low() -> None:
    detector = ImageDetector()
    for colour, pattern in (
        ((255, 255, 255), "flat"),
        ((30, 160, 60), "flat"),
        ((240, 240, 0), "stripes"),
    ):
        message = build_message(
            None, message_type="image", data={"image": encoded(colour, pattern)}
        )
        found = await detector.detect(message, COND, DetectContext())
        assert [d.category for d in found] == list(SCORED)
        assert all(0.0 <= d.confidence < 0.3 for d in found), found


@needs_model
async def test_no_image_or_broken_image() -> None:
    detector = ImageDetector()
    assert await detector.detect(build_message("hello"), COND, DetectContext()) == []
    broken = build_message(
        None, message_type="image", data={"image": base64.b64encode(b"xx").decode()}
    )
    with pytest.raises(DetectorError):
        await detector.detect(broken, COND, DetectContext())
