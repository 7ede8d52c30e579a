"""The local scam detector at its shipped thresholds: scams it must catch, ordinary talk about
money, passwords and links it must pass, the rule-based categories and spam behaviour."""

from __future__ import annotations

import pytest

from moderation.defaults import SCAM_THRESHOLDS as SHIPPED_THRESHOLDS
from moderation.detectors.base import DetectContext
from moderation.detectors.scam import ScamDetector
from moderation.rules import SCAM_CATEGORIES, Condition
from moderation.types import MessageView
from tests.moderation.conftest import build_message

SCAM = Condition("scam", ("text",))
DETECTOR = ScamDetector()
T0 = 1_764_000_000

CAUGHT = [
    (
        "scam",
        "Congratulations! You've been chosen to receive a $500 gift card. Claim now: bit.ly/3kF9x",
    ),
    ("scam", "your bank account is locked, log in at secure-bank-verify.net within 24 hours"),
    ("phishing", "your bank account is locked, log in at secure-bank-verify.net within 24 hours"),
    (
        "phishing",
        "hi, I'm from the admin team, send me the verification code you just got so I can fix"
        " your account",
    ),
    ("scam", "send 0.05 BTC to this wallet and receive 0.1 BTC back, official giveaway"),
    ("scam", "earn 400 dollars a day working from home, no experience, DM me now"),
    ("scam", "Claim your FREE prize now! Text CLAIM to 88066, limited offer"),
]

PASSED = [
    "I forgot my password again, how do I reset it?",
    "never give your login code to anyone, the admins will never ask for it",
    "I sold my bitcoin last year, wish I had kept it",
    "we're hiring two backend developers, see our careers page",
    "can you send me the 15 for the pizza?",
    "the link to the docs is https://docs.python.org/3/",
    "my parcel is stuck at customs, the tracking hasn't changed",
    "I won the pub quiz last night!",
    "the bank called me about a suspicious payment, I called them back on the official number",
]


async def scores(text: str, recent: list[MessageView] | None = None) -> dict[str, float]:
    message = build_message(text, id=999, sent_at=T0)
    found = await DETECTOR.detect(message, SCAM, DetectContext(sender_recent=recent or []))
    assert [d.category for d in found] == list(SCAM_CATEGORIES)
    return {d.category: d.confidence for d in found}


@pytest.mark.parametrize(("category", "text"), CAUGHT)
async def test_caught_at_shipped_threshold(category: str, text: str) -> None:
    got = await scores(text)
    assert got[category] >= SHIPPED_THRESHOLDS[category], got


@pytest.mark.parametrize("text", PASSED)
async def test_ordinary_messages_pass(text: str) -> None:
    got = await scores(text)
    fired = {c: got[c] for c, t in SHIPPED_THRESHOLDS.items() if got[c] >= t}
    assert not fired, fired
    assert got["link_shortener"] == 0.0 and got["spam_behaviour"] < 0.5


async def test_rule_based_categories() -> None:
    got = await scores("URGENT: act now, your prize expires today only, see tinyurl.com/x1")
    assert got["link_shortener"] == 1.0
    assert got["urgency"] >= 0.75
    calm = await scores("see you tomorrow at the cafe")
    assert calm["link_shortener"] == 0.0 and calm["urgency"] == 0.0


async def test_spam_behaviour_raises_scam() -> None:
    text = "check out my new channel and subscribe please"
    recent = [
        build_message(text, id=i, sent_at=T0 - 60 * (5 - i), receiver=f"r{i}") for i in range(4)
    ]
    alone = await scores(text)
    flooding = await scores(text, recent)
    assert flooding["spam_behaviour"] >= 0.5
    assert flooding["scam"] >= max(alone["scam"], 0.5)


async def test_empty_text_scores_zero() -> None:
    got = await scores("")
    assert got["scam"] == 0.0 and got["phishing"] == 0.0
