"""Sentiment (VADER): clear negatives and positives, neutral chat in between."""

from __future__ import annotations

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.sentiment import SentimentDetector
from moderation.rules import Condition
from tests.moderation.conftest import build_message

COND = Condition("sentiment", ("text",))


async def scores(text: str) -> dict[str, float]:
    found = await SentimentDetector().detect(build_message(text), COND, DetectContext())
    assert [d.category for d in found] == ["negative", "positive"]
    return {d.category: d.confidence for d in found}


@pytest.mark.parametrize(
    "text",
    [
        "this is the worst, most awful service I have ever had, I hate it",
        "I'm so angry and disgusted, terrible terrible experience",
        "you ruined everything, I'm furious",
    ],
)
async def test_negative(text: str) -> None:
    got = await scores(text)
    assert got["negative"] >= 0.6 and got["positive"] == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "thank you so much, this is wonderful!",
        "I love it, great job everyone :)",
        "best day ever!!",
    ],
)
async def test_positive(text: str) -> None:
    got = await scores(text)
    assert got["positive"] >= 0.6 and got["negative"] == 0.0


@pytest.mark.parametrize(
    "text", ["the meeting is at 3pm", "", "the file is in the folder on the server"]
)
async def test_neutral(text: str) -> None:
    got = await scores(text)
    assert got["negative"] < 0.3 and got["positive"] < 0.3


async def test_negation() -> None:
    assert (await scores("this is not good at all"))["negative"] > 0.2
