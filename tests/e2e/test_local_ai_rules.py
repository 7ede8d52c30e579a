"""The local AI text rules end to end, once an operator enables them: clear messages are
delivered approved, harmful ones are held for review with a reason that names the stage,
category, score and threshold; the same with the cascade (``aiCascade``), which an operator
turns on through the moderation settings (off by default; a bad value is refused and changes
nothing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from client.sdk.errors import ServerError
from tests.conftest import World, world_on


@pytest.fixture
async def world(server_factory: Any) -> AsyncIterator[World]:
    """A fresh server per test: the rules and settings changed here stay off the shared one."""
    srv = server_factory("--rate-limit", "0")
    try:
        async with world_on(srv) as w:
            yield w
    finally:
        srv.stop()  # its encoder's memory is not kept for the rest of the session


async def enable(world: World, *rule_ids: str) -> None:
    for rule_id in rule_ids:
        body = await world.rest.get_rule(rule_id)
        body = {k: v for k, v in body.items() if k not in ("revision", "createdAt", "updatedAt")}
        await world.rest.update_rule(rule_id, {**body, "enabled": True})


async def held_for_review(world: World, message_id: int) -> dict[str, Any]:
    """The review-queue item of ``message_id`` once the pipeline has judged it (the encoder
    loads on first use)."""
    for _ in range(200):
        queue = await world.rest.queue("review")
        for item in queue["items"]:
            if item["message"]["id"] == message_id:
                return dict(item)
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {message_id} never reached the review queue")


@pytest.mark.parametrize("cascade", [False, True])
async def test_enabled_ai_rules_deliver_clear_text_and_hold_an_insult(
    world: World, cascade: bool
) -> None:
    if cascade:
        shown = await world.rest.put_settings({"aiCascade": True})
        assert shown["aiCascade"] is True
    await enable(world, "ai-toxicity", "ai-harmful-content")
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)

    clear = await a.send_text(bob, "can someone send me the slides from this morning's meeting?")
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == clear["id"]
    assert verdict.message["moderationStatus"] == "approved"
    got = await b.next_event("message")
    assert got.message["id"] == clear["id"]

    insult = await a.send_text(bob, "you are a brainless moron and nobody wants you here")
    item = await held_for_review(world, insult["id"])
    assert item["ruleId"] == "ai-toxicity"
    await b.expect_no_event("message", within=0.3)
    # why it is held: the audit entry of the hold names category, score, threshold and stage
    entries = (await world.rest.audit(since=0))["entries"]
    held = next(
        e for e in entries if e["action"] == "message.review" and e["target"] == str(insult["id"])
    )
    reason = held["details"]["reason"]
    assert ">=" in reason and reason.endswith("(encoder stage)"), reason


async def test_evaluate_explains_which_stage_decided(world: World) -> None:
    await enable(world, "ai-toxicity", "ai-harmful-content")
    alice, bob = await world.user("alice"), await world.user("bob")
    result = await world.rest.evaluate(
        "I will find where you live and kill you", sender=alice, receiver=bob
    )
    assert result["verdict"]["status"] == "review"
    match = result["verdict"]["matches"][0]
    assert match["ruleId"] in ("ai-toxicity", "ai-harmful-content")
    assert ">=" in match["reason"] and match["reason"].endswith("(encoder stage)")
    clear = await world.rest.evaluate("lunch at 12?", sender=alice, receiver=bob)
    assert clear["verdict"]["status"] == "approved"


async def test_the_cascade_is_an_operator_setting_off_by_default(world: World) -> None:
    assert (await world.rest.get_settings())["aiCascade"] is False
    await world.rest.put_settings({"contextWindow": 3})
    for bad in ("yes", 1, None, {"on": True}):
        with pytest.raises(ServerError) as info:
            await world.rest.put_settings({"aiCascade": bad, "contextWindow": 7})
        assert info.value.code == "ERR_BAD_REQUEST"
        assert info.value.details == {"field": "aiCascade"}
    shown = await world.rest.get_settings()
    assert shown["aiCascade"] is False and shown["contextWindow"] == 3  # nothing changed
    assert (await world.rest.put_settings({"aiCascade": True}))["aiCascade"] is True
    # a later write that does not name it keeps it
    shown = await world.rest.put_settings({"contextWindow": 4})
    assert shown["aiCascade"] is True and shown["contextWindow"] == 4
    assert (await world.rest.put_settings({"aiCascade": False}))["aiCascade"] is False
