"""Escalation ladders end to end (issue 15 item 4): repeated violations of one rule go warn ->
mute -> kick -> ban, each with its statement of reasons from the rule; only admins set them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from client.sdk import ParleyClient, ServerError
from tests.conftest import World, unique
from tests.e2e.test_decisions import word_rule

LADDER = {
    "windowSeconds": 3600,
    "steps": [
        {"violations": 2, "measure": "mute", "durationSeconds": 600},
        {"violations": 3, "measure": "kick"},
        {"violations": 4, "measure": "ban"},
    ],
}


async def violate(a: ParleyClient, guid: str, word: str) -> dict[str, Any]:
    sent = await a.send_text(guid, f"{word}!", receiver_type="group")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message.get("id") == sent["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"
    return sent


async def test_repeated_violations_climb_the_ladder(world: World) -> None:
    alice, owner = await world.user("esc"), await world.user("own")
    word = unique("zzladder")
    rule_id = await word_rule(world, word, alice)
    put = await world.rest.request("PUT", f"/moderation/rules/{rule_id}/escalation", json=LADDER)
    assert put["ladder"] == LADDER
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, alice)
    a = await world.connect(alice)

    await violate(a, guid, word)  # the first: its statement of reasons is the warning
    await a.expect_no_event("moderation.decision", within=0.3)

    await violate(a, guid, word)
    muted = (await a.next_event("moderation.decision", timeout=5)).data["decision"]
    assert muted["measure"] == "mute" and muted["scope"] == f"group:{guid}"
    assert muted["source"] == "rule" and muted["ruleId"] == rule_id
    assert muted["automatedDecision"] is True and muted["until"] > 0
    with pytest.raises(ServerError) as err:
        await a.send_text(guid, "may I speak?", receiver_type="group")
    assert err.value.code == "ERR_MUTED"
    restrictions = (await world.rest.request("GET", f"/users/{alice}/restrictions"))["restrictions"]
    [mute] = [r for r in restrictions if r["kind"] == "mute" and not r["liftedAt"]]
    await world.rest.request("DELETE", f"/users/{alice}/restrictions/{mute['restrictionId']}")

    await violate(a, guid, word)
    kicked = (await a.next_event("moderation.decision", timeout=5)).data["decision"]
    assert kicked["measure"] == "kick" and kicked["ruleId"] == rule_id
    group = await world.rest.request("GET", f"/groups/{guid}")
    assert alice not in {m["uid"] for m in group["members"]}

    await world.rest.add_member(guid, alice)
    await violate(a, guid, word)
    banned = (await a.next_event("moderation.decision", timeout=5)).data["decision"]
    assert banned["measure"] == "ban" and banned["source"] == "rule"
    with pytest.raises(ServerError) as err:
        await a.send_text(guid, "let me back in", receiver_type="group")
    assert err.value.code == "ERR_BANNED"
    entries = (await world.rest.audit(since=int(time.time()) - 60))["entries"]
    actors = {
        e["actor"]
        for e in entries
        if e["action"] in ("decision.mute", "decision.ban") and e["target"] == alice
    }
    assert all(a.startswith(f"moderation:{rule_id}@") for a in actors) and actors


async def test_a_kick_step_on_a_direct_message_is_skipped_and_audited(world: World) -> None:
    alice, bob = await world.user("esd"), await world.user("esr")
    word = unique("zzdirect")
    rule_id = await word_rule(world, word, alice)
    await world.rest.request(
        "PUT",
        f"/moderation/rules/{rule_id}/escalation",
        json={"windowSeconds": 600, "steps": [{"violations": 2, "measure": "kick"}]},
    )
    a = await world.connect(alice)
    for _ in range(2):
        sent = await a.send_text(bob, f"{word}!")
        await a.next_event(
            "message.moderated", predicate=lambda e, i=sent["id"]: e.message["id"] == i
        )
    found: list[dict[str, Any]] = []
    for _ in range(40):  # the ladder runs just after the verdict is sent
        entries = (await world.rest.audit(since=int(time.time()) - 60))["entries"]
        found = [e for e in entries if e["action"] == "escalation.skipped" and e["target"] == alice]
        if found:
            break
        await asyncio.sleep(0.1)
    [skipped] = found
    assert skipped["details"]["measure"] == "kick" and skipped["details"]["violations"] == 2


async def test_only_admins_set_ladders_and_bad_ones_are_refused(world: World) -> None:
    mod = await world.user("escm", role="moderator")
    rule_id = unique("r")
    async with world.user_rest(await world.token(mod)) as rest:
        got = await rest.request("GET", f"/moderation/rules/{rule_id}/escalation")
        assert got == {"ruleId": rule_id, "ladder": None}
        with pytest.raises(ServerError) as err:
            await rest.request("PUT", f"/moderation/rules/{rule_id}/escalation", json=LADDER)
        assert err.value.status == 403
    for bad, field in (
        ({"windowSeconds": 5, "steps": []}, "windowSeconds"),
        ({"steps": [{"violations": 1, "measure": "mute"}]}, "steps[0].violations"),
        ({"steps": [{"violations": 2, "measure": "shame"}]}, "steps[0].measure"),
        (
            {"steps": [{"violations": 3, "measure": "kick"}, {"violations": 2, "measure": "ban"}]},
            "steps[1].violations",
        ),
    ):
        with pytest.raises(ServerError) as err:
            await world.rest.request("PUT", f"/moderation/rules/{rule_id}/escalation", json=bad)
        assert err.value.status == 400 and err.value.details["field"] == field
    cleared = await world.rest.request(
        "PUT", f"/moderation/rules/{rule_id}/escalation", json={"ladder": None}
    )
    assert cleared["ladder"] is None
