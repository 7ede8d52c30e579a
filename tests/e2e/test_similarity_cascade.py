"""The similarity rule with the cascade on (``aiCascade``, a fresh server's setting), end to
end: with ``platform-circumvention`` enabled, a paraphrase of one of its sentences is still
delivered and queued as flagged, with a reason naming the closest sentence, while ordinary chat
is delivered approved; a ``sentences`` list an operator creates through the lists API, with a
rule on it, works the same way."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import World


@pytest.fixture
def world(fresh_world: World) -> World:
    """A server of its own per test (``fresh_world``): the rules and settings changed here
    stay off the shared one."""
    return fresh_world


async def flagged(world: World, message_id: int) -> dict[str, Any] | None:
    """The flagged queue item of ``message_id``, or None."""
    queue = await world.rest.queue("flagged")
    return next((i for i in queue["items"] if i["message"]["id"] == message_id), None)


async def wait_flagged(world: World, message_id: int) -> dict[str, Any]:
    for _ in range(200):
        item = await flagged(world, message_id)
        if item is not None:
            return item
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {message_id} never reached the flagged queue")


async def send_and_deliver(world: World, a: Any, b: Any, bob: str, text: str) -> dict[str, Any]:
    """Send ``text``; the verdict the sender gets (the receiver gets the message too)."""
    sent = await a.send_text(bob, text)
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == sent["id"]
    got = await b.next_event("message")
    assert got.message["id"] == sent["id"]
    return dict(verdict.message)


async def test_paraphrase_flagged_and_chat_approved_with_the_cascade_on(world: World) -> None:
    assert (await world.rest.get_settings())["aiCascade"] is True
    rule = await world.rest.get_rule("platform-circumvention")
    body = {k: v for k, v in rule.items() if k not in ("revision", "createdAt", "updatedAt")}
    await world.rest.update_rule("platform-circumvention", {**body, "enabled": True})
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)

    para = await send_and_deliver(world, a, b, bob, "add me on snap, username in bio")
    assert para["moderationStatus"] == "approved"  # flag: delivered, and queued
    item = await wait_flagged(world, para["id"])
    assert item["ruleId"] == "platform-circumvention"
    reason = item["moderation"]["reason"]  # the encoder's score, naming the closest sentence
    assert reason.startswith("similar to 'add me on snapchat, my username is in my bio'"), reason

    for text in ("see you at the cinema tonight", "the build is green again, merging now"):
        clear = await send_and_deliver(world, a, b, bob, text)
        assert clear["moderationStatus"] == "approved"
        await asyncio.sleep(0.2)
        assert await flagged(world, clear["id"]) is None


async def test_a_list_created_through_the_api_works_with_the_gate(world: World) -> None:
    await world.rest.create_list(
        {
            "id": "phone-numbers",
            "name": "Asking for phone numbers",
            "kind": "sentences",
            "items": ["what's your phone number?", "send me your cell number"],
        }
    )
    await world.rest.create_rule(
        {
            "id": "ask-phone",
            "name": "Asking for phone numbers",
            "enabled": True,
            "filters": {},
            "match": "any",
            "conditions": [
                {
                    "kind": "similarity",
                    "messageTypes": ["text"],
                    "listId": "phone-numbers",
                    "threshold": 0.65,
                }
            ],
            "actions": ["flag"],
        }
    )
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    asked = await send_and_deliver(world, a, b, bob, "mind sharing your phone number?")
    assert (await wait_flagged(world, asked["id"]))["ruleId"] == "ask-phone"
    clear = await send_and_deliver(world, a, b, bob, "see you at the cinema tonight")
    assert clear["moderationStatus"] == "approved"
    await asyncio.sleep(0.2)
    assert await flagged(world, clear["id"]) is None
