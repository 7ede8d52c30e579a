"""Pure parts of the OpenAI provider (the e2e test talks to a real compatible server)."""

from __future__ import annotations

import pytest

from moderation.providers.guard import ProviderError
from moderation.providers.openai import (
    SYSTEM_PREAMBLE,
    OpenAIConfig,
    parse_verdict,
    prompt_messages,
)
from tests.moderation.conftest import build_message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"violates": true, "confidence": 0.9, "category": "Spam", "reason": "r"}',
            (True, 0.9, "spam", "r"),
        ),
        (
            '{"violates": false, "confidence": 1.5, "category": "", "reason": ""}',
            (False, 1.0, "", ""),
        ),
    ],
)
def test_parse_verdict(content: str, expected: tuple[bool, float, str, str]) -> None:
    assert parse_verdict(content) == expected


@pytest.mark.parametrize(
    "content",
    [None, "", "nope", "[]", '{"violates": "yes", "confidence": 1}', '{"violates": true}'],
)
def test_parse_verdict_rejects(content: str | None) -> None:
    with pytest.raises(ProviderError):
        parse_verdict(content)


def test_prompt_messages_with_and_without_context() -> None:
    message = build_message("buy now", id=3)
    system, user = prompt_messages("No spam.", message, [build_message("hi", id=1, sender="bob")])
    assert system["content"] == SYSTEM_PREAMBLE + "No spam."
    assert user["content"] == (
        "Conversation so far (oldest first):\nbob: hi\n\nMessage to judge:\nalice: buy now"
    )
    _, alone = prompt_messages("No spam.", message, [])
    assert alone["content"] == "Message to judge:\nalice: buy now"


def test_config_repr_hides_the_key() -> None:
    assert "sk-secret" not in repr(OpenAIConfig(api_key="sk-secret"))
