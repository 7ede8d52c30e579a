"""Media in the engine: captions judged by text rules, frames through the image detectors
(the worst frame decides and is named), undecodable media held for review, OpenAI parts."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Sequence
from typing import Any

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.image import ImageDetector
from moderation.detectors.image import available as image_model_available
from moderation.engine import Engine
from moderation.errors import Undecided
from moderation.image_data import frame_label, images_of
from moderation.local_detectors import build_detectors
from moderation.providers.openai import prompt_messages
from moderation.rules import Condition, parse_list, parse_rule
from moderation.types import Frame, MessageView, VerdictStatus
from tests.moderation.conftest import build_message

LISTS = {"w": parse_list({"id": "w", "name": "w", "kind": "keywords", "items": ["zorp"]})}


class Media:
    """A fake ``MediaContent``: given frames, or an error, counting decodes."""

    def __init__(self, frames: Sequence[Frame] = (), error: Exception | None = None) -> None:
        self.kind = "video"
        self._frames = list(frames)
        self._error = error
        self.calls = 0

    async def frames(self) -> Sequence[Frame]:
        self.calls += 1
        if self._error is not None:
            raise self._error
        return self._frames


def media_message(text: str | None, media: Media, message_type: str = "image") -> MessageView:
    return dataclasses.replace(build_message(text, message_type=message_type), media=media)


def text_rule(actions: list[str]) -> dict[str, object]:
    return {
        "id": "caption",
        "name": "caption",
        "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": "w"}],
        "actions": actions,
    }


async def test_a_caption_is_judged_by_the_text_rules() -> None:
    engine = Engine([parse_rule(text_rule(["block"]), known_lists=["w"])], LISTS, build_detectors())
    assert not engine.covers("message", "image")
    assert engine.covers("message", "image", caption=True)
    assert engine.inline_for("message", "image", caption=True)
    blocked = await engine.evaluate(media_message("a zorp here", Media()))
    assert blocked.status is VerdictStatus.DISAPPROVED
    assert (await engine.evaluate(media_message("fine", Media()))).status is VerdictStatus.APPROVED
    # Not a caption: a custom message's data, or a text message, are judged as before.
    assert media_message("  ", Media()).has_caption is False
    assert build_message("zorp").has_caption is False


def test_condition_applies_to_captions_only_with_text() -> None:
    on_text = Condition("keywords", ("text",), list_id="w")
    assert not on_text.applies_to("message", "video")
    assert on_text.applies_to("message", "video", caption=True)
    assert not Condition("image", ("image",)).applies_to("message", "video", caption=True)


async def test_images_of_prefers_the_uploaded_media() -> None:
    frames = [Frame(b"a", "image/jpeg", 0.0), Frame(b"b", "image/jpeg", 5.0)]
    assert await images_of(media_message(None, Media(frames))) == frames
    assert await images_of(build_message("hi")) == []
    assert frame_label(frames[1]) == " at 5.0 s" and frame_label(Frame(b"", "x")) == ""


class Scored(ImageDetector):
    """The image detector with a scorer by frame bytes instead of the model."""

    def score(self, data: bytes) -> float:
        return {b"blue": 0.01, b"skin": 0.93}.get(data, 0.2)


async def test_the_worst_frame_decides_and_is_named() -> None:
    frames = [Frame(b"blue", "image/jpeg", 0.0), Frame(b"skin", "image/jpeg", 12.0)]
    found = await Scored(kind="video").detect(
        media_message(None, Media(frames), "video"), Condition("video", ("video",)), DetectContext()
    )
    assert {(d.detector, d.category, d.confidence) for d in found} == {
        ("video", "unsafe", 0.93),
        ("video", "explicit_nudity", 0.93),
    }
    assert {d.reason for d in found} == {"unsafe 0.93 at 12.0 s", "explicit_nudity 0.93 at 12.0 s"}
    # A still image names no time (the engine writes "unsafe 0.93 >= 0.50").
    still = await Scored().detect(
        media_message(None, Media([Frame(b"skin", "image/png")])),
        Condition("image", ("image",)),
        DetectContext(),
    )
    assert {d.reason for d in still} == {""}
    # Audio and files give no frames: nothing to score, no detections.
    assert (
        await Scored().detect(
            media_message(None, Media([]), "audio"), Condition("image", ("audio",)), DetectContext()
        )
        == []
    )


async def test_media_that_cannot_be_decoded_is_held_for_review() -> None:
    media = Media(error=RuntimeError("no PyAV"))
    with pytest.raises(Undecided):
        await Scored().detect(
            media_message(None, media, "video"), Condition("image", ("video",)), DetectContext()
        )
    rule = parse_rule(
        {
            "id": "nsfw",
            "name": "nsfw",
            "conditions": [{"kind": "image", "messageTypes": ["video"], "threshold": 0.5}],
            "actions": ["block"],
        }
    )
    engine = Engine([rule], {}, {"image": Scored()})
    verdict = await engine.evaluate(media_message(None, Media(error=RuntimeError("x")), "video"))
    assert verdict.status is VerdictStatus.REVIEW
    assert "could not be decoded" in verdict.matches[0].reason


def test_prompt_messages_carry_every_frame() -> None:
    message = build_message("look", message_type="video")
    urls = [f"data:image/jpeg;base64,{i}" for i in range(3)]
    _, user = prompt_messages("No nudity.", message, [], urls)
    content: Any = user["content"]
    parts: list[Any] = list(content)
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url", "image_url"]
    assert "3 images are frames" in str(parts[0])
    _, one = prompt_messages("No nudity.", message, [], urls[0])
    one_content: Any = one["content"]
    one_parts: list[Any] = list(one_content)
    assert [p["type"] for p in one_parts] == ["text", "image_url"]


@pytest.mark.skipif(not image_model_available(), reason="optional extra parley[images]")
async def test_the_real_model_sees_uploaded_frames() -> None:
    from PIL import Image

    def jpeg(colour: tuple[int, int, int]) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (640, 480), colour).save(out, "JPEG")
        return out.getvalue()

    frames = [
        Frame(jpeg((10, 120, 200)), "image/jpeg", 0.0),
        Frame(jpeg((224, 172, 140)), "image/jpeg", 5.0),
    ]
    found = await ImageDetector(kind="video").detect(
        media_message(None, Media(frames), "video"), Condition("video", ("video",)), DetectContext()
    )
    unsafe = next(d for d in found if d.category == "unsafe")
    assert unsafe.confidence > 0.15 and unsafe.reason.endswith(" at 5.0 s")
