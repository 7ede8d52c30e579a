"""Fixtures for the moderation unit tests: message views built in one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from moderation.types import MessageView, ReceiverView, UserView

MakeMessage = Callable[..., MessageView]


def build_message(
    text: str | None = "hello",
    *,
    id: int = 1,
    sender: str = "alice",
    role: str = "user",
    sender_tags: tuple[str, ...] = (),
    sender_name: str | None = None,
    sender_created: int = 1_000,
    receiver: str = "bob",
    receiver_type: str = "user",
    receiver_tags: tuple[str, ...] = (),
    receiver_name: str | None = None,
    group_type: str | None = None,
    receiver_created: int = 1_000,
    category: str = "message",
    message_type: str = "text",
    data: Any = None,
    sent_at: int = 1_764_000_000,
    conversation_id: str | None = None,
) -> MessageView:
    """A message view with sensible defaults; every field can be overridden."""
    return MessageView(
        id=id,
        conversation_id=conversation_id or f"{sender}_user_{receiver}",
        category=category,
        message_type=message_type,
        text=text,
        data=data,
        sender=UserView(sender, sender_name or sender.title(), role, sender_tags, sender_created),
        receiver=ReceiverView(
            receiver_type,
            receiver,
            receiver_name or receiver.title(),
            receiver_tags,
            group_type,
            receiver_created,
        ),
        sent_at=sent_at,
    )


@pytest.fixture
def make_message() -> MakeMessage:
    """``build_message`` as a fixture."""
    return build_message
