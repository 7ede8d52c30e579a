"""Phone numbers and e-mail addresses: plain and obfuscated caught, ordinary text passed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from moderation.detectors.base import DetectContext
from moderation.detectors.contacts import EmailDetector, PhoneDetector, find_emails, find_phones
from moderation.rules import Condition
from moderation.types import MessageView

Make = Callable[..., MessageView]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("call me at 415-555-2671", "+14155552671"),
        ("(415) 555-2671", "+14155552671"),
        ("415.555.2671", "+14155552671"),
        ("4 1 5 - 5 5 5 - 2 6 7 1", "+14155552671"),
        ("four one five five five five two six seven one", "+14155552671"),
        ("four 1 five 555 two six 7 one", "+14155552671"),
        ("415 555 267O", "+14155552670"),
        ("\uff14\uff11\uff15 \uff15\uff15\uff15 \uff12\uff16\uff17\uff11", "+14155552671"),
        ("+44 7911 123456", "+447911123456"),
        ("07911 123456", "+447911123456"),
        ("0 7 9 1 1 - 1 2 3 4 5 6", "+447911123456"),
        ("+49 30 12345678", "+493012345678"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+91 98450 12873", "+919845012873"),
        ("ring 0044 7911 123456", "+447911123456"),
    ],
)
def test_phone_numbers_found(text: str, number: str) -> None:
    assert number in find_phones(text), text


@pytest.mark.parametrize(
    "text",
    [
        "meet at 5",
        "see you at 10:30 tomorrow",
        "in 2024 and 2025",
        "it costs $19.99",
        "prices 5, 10, 15, 20, 25, 30, 35",
        "order #4155552671 shipped",
        "invoice 4155552671",
        "tracking number: 4155552671",
        "1234567890",
        "0000000000",
        "I have 2 cats and 3 dogs",
        "room 405 on floor 3",
        "the year 1999",
        "one or two of them",
        "version 3.11.7",
        "12345",
    ],
)
def test_phone_innocent(text: str) -> None:
    assert find_phones(text) == [], text


def test_phone_regions_from_condition() -> None:
    assert find_phones("07911 123456", ("US",)) == []
    assert find_phones("07911 123456", ("GB",)) == ["+447911123456"]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("mail john.doe@example.com", "john.doe@example.com"),
        ("JOHN@EXAMPLE.COM", "john@example.com"),
        ("john\uff20example\uff0ecom", "john@example.com"),
        ("john dot doe at example dot com", "john.doe@example.com"),
        ("john[at]example[dot]com", "john@example.com"),
        ("john [at] example [dot] com", "john@example.com"),
        ("john (at) example (dot) com", "john@example.com"),
        ("john{at}example{dot}com", "john@example.com"),
        ("john @ example . com", "john@example.com"),
        ("john at gmail.com", "john@gmail.com"),
        ("john(@)example(.)org", "john@example.org"),
        ("write to jane_d+news@sub.example.co.uk", "jane_d+news@sub.example.co.uk"),
    ],
)
def test_emails_found(text: str, address: str) -> None:
    assert address in find_emails(text), text


@pytest.mark.parametrize(
    "text",
    [
        "meet at 5",
        "look at this",
        "look at google.com",
        "I am at home. Com on",
        "at the end of the day",
        "arrive at noon, dot the i's",
        "price is $5 at the store",
        "we met @ the park",
        "the @channel mention",
        "version 1.2.3 at build 5",
        "email me later",
    ],
)
def test_email_innocent(text: str) -> None:
    assert find_emails(text) == [], text


async def test_phone_split_across_messages_found_with_context(make_message: Make) -> None:
    previous = make_message("my number is 415 555", id=1)
    current = make_message("2671", id=2)
    detector = PhoneDetector()
    condition = Condition("phone", ("text",), context_window=2)
    assert await detector.detect(current, condition, DetectContext()) == []
    found = await detector.detect(current, condition, DetectContext(context=(previous,)))
    assert [d.reason for d in found] == ["phone number +14155552671"]


async def test_contact_wholly_in_earlier_message_not_reported_again(make_message: Make) -> None:
    previous = make_message("call 415 555 2671", id=1)
    current = make_message("thanks", id=2)
    ctx = DetectContext(context=(previous,))
    assert await PhoneDetector().detect(current, Condition("phone", ("text",)), ctx) == []
    other = make_message("john at", id=1, sender="alice")
    now = make_message("example dot com", id=2)
    found = await EmailDetector().detect(
        now, Condition("email", ("text",)), DetectContext(context=(other,))
    )
    assert [d.category for d in found] == ["email"]


async def test_context_from_other_senders_ignored(make_message: Make) -> None:
    previous = make_message("my number is 415 555", id=1, sender="bob", receiver="alice")
    current = make_message("2671", id=2)
    found = await PhoneDetector().detect(
        current, Condition("phone", ("text",)), DetectContext(context=(previous,))
    )
    assert found == []
