"""Sentiment (VADER): clear negatives and positives, neutral chat in between."""

from __future__ import annotations

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.model_registry import shared_models
from moderation.detectors.sentiment import SentimentDetector, lexicon_free, sentiment
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


# Texts where VADER's rules act (negation, "no", "least", "but", caps, punctuation, emoticons,
# emoji spelled out, idioms, boosters alone): the shortcut must give VADER's own scores.
TRICKY = [
    "no",
    "not",
    "kind of",
    "least",
    "but",
    ":(",
    ":-)",
    "ok :)",
    "<3",
    "NOT good!!!",
    "the shit",
    "yeah right",
    "kiss of death",
    "very very",
    "extremely",
    "I am \U0001f621",
    "see you at the station \U0001f600",
    "no problem at all",
    "it was the least bad option",
    "the plan is fine but the team is awful",
    "meh...",
    "the file is in the folder on the server",
    "rocket planet silver golden",
    "ok.",
]


@pytest.mark.parametrize("text", TRICKY)
def test_shortcut_gives_vaders_scores(text: str) -> None:
    analyzer = shared_models().vader()
    compound = float(analyzer.polarity_scores(text)["compound"])
    assert sentiment(analyzer, text) == (
        round(max(0.0, -compound), 4),
        round(max(0.0, compound), 4),
    )
    if lexicon_free(analyzer, text):
        assert compound == 0.0


def test_shortcut_skips_only_texts_without_lexicon_words() -> None:
    analyzer = shared_models().vader()
    assert lexicon_free(analyzer, "the meeting is at 3pm in the station")
    assert not lexicon_free(analyzer, "the meeting is at 3pm, sadly")
    assert not lexicon_free(analyzer, "HATE!!!")  # punctuation stripped, case folded
    assert not lexicon_free(analyzer, "see you \U0001f600")  # emoji are spelled out in words


async def test_repeated_text_gets_the_same_scores() -> None:
    detector = SentimentDetector()
    message = build_message("you ruined everything, I'm furious")
    first = await detector.detect(message, COND, DetectContext())
    again = await detector.detect(message, COND, DetectContext())
    assert first == again and first[0].confidence >= 0.6
