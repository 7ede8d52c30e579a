"""What moderation sees of an upload (server/media/frames.py): an image, an animated
image's frames, a video's sampled frames with their times."""

from __future__ import annotations

import io
from fractions import Fraction

import pytest
from PIL import Image

from server.media import frames, video


def mp4(seconds: int, fps: int = 2, size: tuple[int, int] = (160, 120)) -> bytes:
    av = pytest.importorskip("av")
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(seconds * fps):
            # The red channel tells the second the frame was made for.
            picture = Image.new("RGB", size, (index // fps * 20, 0, 0))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def test_a_still_image_is_one_scaled_jpeg() -> None:
    raw = io.BytesIO()
    Image.new("RGB", (3000, 1500), (1, 2, 3)).save(raw, "PNG")
    raw.seek(0)
    [frame] = frames.image_frames(raw, 12)
    assert frame.at is None and frame.mime_type == "image/jpeg"
    assert Image.open(io.BytesIO(frame.data)).size == (frames.MAX_SIDE, frames.MAX_SIDE // 2)


def test_an_animated_image_gives_at_most_max_frames_with_times() -> None:
    pictures = [Image.new("RGB", (32, 32), (i * 10, 0, 0)) for i in range(10)]
    raw = io.BytesIO()
    pictures[0].save(raw, "GIF", save_all=True, append_images=pictures[1:], duration=500)
    raw.seek(0)
    found = frames.image_frames(raw, 4)
    assert 1 < len(found) <= 4
    assert [f.at for f in found] == sorted(f.at or 0.0 for f in found)
    assert found[0].at == 0.0 and (found[1].at or 0) > 0


def test_video_frames_are_the_poster_then_one_every_interval() -> None:
    found = frames.video_frames(io.BytesIO(mp4(12)), 5.0, 12)
    assert [f.at for f in found] == [0.0, 5.0, 10.0]
    reds = [Image.open(io.BytesIO(f.data)).getpixel((5, 5))[0] for f in found]  # type: ignore[index]
    assert [round(r / 20) for r in reds] == [0, 5, 10]  # the frames of those seconds
    assert [f.at for f in frames.video_frames(io.BytesIO(mp4(12)), 2.0, 3)] == [0.0, 2.0, 4.0]


def test_video_frames_need_pyav_and_a_video(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(frames.FramesUnavailable):
        frames.video_frames(io.BytesIO(b"not a video at all" * 100), 5.0, 12)
    monkeypatch.setattr(video, "av_module", lambda: None)
    with pytest.raises(frames.FramesUnavailable, match="'video' extra"):
        frames.video_frames(io.BytesIO(mp4(2)), 5.0, 12)
