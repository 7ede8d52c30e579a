"""The local AI text rules end to end, as a fresh server ships them: clear messages are
delivered approved; messages the model is nearly sure are harmful are held for review with a
reason that names the stage, category, score and threshold; likely ones in the band below are
delivered and queued as flagged. The same with the cascade (``aiCascade``), on for a fresh
server, which an operator can turn off through the moderation settings (a bad value is refused
and changes nothing). A restart keeps what the operator changed: defaults are seeded once; an
operator sees a newer version's in ``GET /moderation/defaults`` and adopts them rule by rule
(``POST /moderation/rules/{ruleId}/reset``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from client.sdk.errors import ServerError
from tests.conftest import ServerProcess, World, world_on


@pytest.fixture
def world(fresh_world: World) -> World:
    """A server of its own per test (``fresh_world``): the rules and settings changed here
    stay off the shared one."""
    return fresh_world


def editable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("revision", "createdAt", "updatedAt")}


async def in_queue(world: World, state: str, message_id: int) -> dict[str, Any]:
    """The ``state`` queue item of ``message_id`` once the pipeline has judged it (the encoder
    loads on first use)."""
    for _ in range(200):
        queue = await world.rest.queue(state)
        for item in queue["items"]:
            if item["message"]["id"] == message_id:
                return dict(item)
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {message_id} never reached the {state} queue")


@pytest.mark.parametrize("cascade", [True, False])
async def test_out_of_the_box_clear_text_is_delivered_a_sure_insult_held_a_likely_one_flagged(
    world: World, cascade: bool
) -> None:
    assert (await world.rest.get_settings())["aiCascade"] is True  # a fresh server's
    if not cascade:
        assert (await world.rest.put_settings({"aiCascade": False}))["aiCascade"] is False
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)

    clear = await a.send_text(bob, "can someone send me the slides from this morning's meeting?")
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == clear["id"]
    assert verdict.message["moderationStatus"] == "approved"
    got = await b.next_event("message")
    assert got.message["id"] == clear["id"]

    insult = await a.send_text(bob, "you are a brainless moron and nobody wants you here")
    item = await in_queue(world, "review", insult["id"])
    assert item["ruleId"] == "ai-toxicity"
    await b.expect_no_event("message", within=0.3)
    # why it is held: the audit entry of the hold names category, score, threshold and stage
    entries = (await world.rest.audit(since=0))["entries"]
    held = next(
        e for e in entries if e["action"] == "message.review" and e["target"] == str(insult["id"])
    )
    reason = held["details"]["reason"]
    assert ">= 0.90" in reason and reason.endswith("(encoder stage)"), reason

    # self-harm scored 0.81: under the review threshold, in the flag band (0.8)
    likely = await a.send_text(bob, "kill yourself")
    got = await b.next_event("message")
    assert got.message["id"] == likely["id"]
    assert got.message["moderationStatus"] == "approved"
    flagged = await in_queue(world, "flagged", likely["id"])
    assert flagged["ruleId"] == "ai-harmful-content-flag"
    assert likely["id"] not in {i["message"]["id"] for i in (await world.rest.queue())["items"]}


async def test_evaluate_explains_which_stage_decided(world: World) -> None:
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


async def test_the_cascade_is_an_operator_setting_on_for_a_fresh_server(world: World) -> None:
    assert (await world.rest.get_settings())["aiCascade"] is True
    await world.rest.put_settings({"contextWindow": 3})
    for bad in ("yes", 1, None, {"on": True}):
        with pytest.raises(ServerError) as info:
            await world.rest.put_settings({"aiCascade": bad, "contextWindow": 7})
        assert info.value.code == "ERR_BAD_REQUEST"
        assert info.value.details == {"field": "aiCascade"}
    shown = await world.rest.get_settings()
    assert shown["aiCascade"] is True and shown["contextWindow"] == 3  # nothing changed
    assert (await world.rest.put_settings({"aiCascade": False}))["aiCascade"] is False
    # a later write that does not name it keeps it
    shown = await world.rest.put_settings({"contextWindow": 4})
    assert shown["aiCascade"] is False and shown["contextWindow"] == 4
    assert (await world.rest.put_settings({"aiCascade": True}))["aiCascade"] is True


async def test_a_restart_keeps_the_operator_s_ai_rules_and_settings(
    server_factory: type[ServerProcess],
) -> None:
    """Defaults are seeded into a data dir once: after an operator turned the AI rules off,
    deleted one and turned the cascade off, a restart (an upgrade, say) brings none back."""
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with world_on(srv) as w:
        body = editable(await w.rest.get_rule("ai-toxicity"))
        await w.rest.update_rule("ai-toxicity", {**body, "enabled": False})
        await w.rest.delete_rule("ai-toxicity-flag")
        await w.rest.put_settings({"aiCascade": False})
    srv.stop()
    srv.start()
    try:
        async with world_on(srv) as w:
            rules = {r["id"]: r for r in await w.rest.list_rules()}
            assert rules["ai-toxicity"]["enabled"] is False
            assert "ai-toxicity-flag" not in rules
            assert rules["ai-harmful-content"]["enabled"] is True
            assert (await w.rest.get_settings())["aiCascade"] is False
            alice, bob = await w.user("alice"), await w.user("bob")
            result = await w.rest.evaluate(
                "you are a brainless moron and nobody wants you here", sender=alice, receiver=bob
            )
            assert result["verdict"]["status"] == "approved", result["verdict"]
    finally:
        srv.stop()


async def test_an_upgraded_deployment_sees_and_adopts_the_shipped_ai_rules(world: World) -> None:
    """A deployment upgraded from a version whose AI rules were off keeps them off (defaults are
    seeded once); ``GET /moderation/defaults`` shows which stored rules differ from this
    version's, and a reset stores the shipped rule again, after which it acts."""
    rest, srv = world.rest, world.server
    insult = "you are a brainless moron and nobody wants you here"
    alice, bob = await world.user("alice"), await world.user("bob")
    # the state an upgrade leaves: the old rule disabled at the old threshold, no flag rule
    old = editable(await rest.get_rule("ai-toxicity"))
    condition = {**old["conditions"][0], "threshold": 0.8}
    condition.pop("thresholds", None)
    await rest.update_rule("ai-toxicity", {**old, "enabled": False, "conditions": [condition]})
    await rest.delete_rule("ai-toxicity-flag")
    before = await rest.evaluate(insult, sender=alice, receiver=bob)
    assert before["verdict"]["status"] == "approved", before["verdict"]

    shown = await rest.rule_defaults()
    stored = {r["rule"]["id"]: r["stored"] for r in shown["rules"]}
    assert stored["ai-toxicity"] == "changed"
    assert stored["ai-toxicity-flag"] == "missing"
    assert stored["ai-harmful-content"] == stored["profanity"] == "same"
    assert shown["settings"] == {"aiCascade": True}
    shipped = {r["rule"]["id"]: r["rule"] for r in shown["rules"]}
    assert shipped["ai-toxicity"]["enabled"] is True

    reset = await rest.reset_rule("ai-toxicity")
    assert reset["revision"] == 3  # seeded, the operator's edit, the reset
    assert editable(reset) == shipped["ai-toxicity"]
    async with httpx.AsyncClient(base_url=srv.url + "/api/v1", verify=False) as http:
        made = await http.post(
            "/moderation/rules/ai-toxicity-flag/reset", headers={"X-API-Key": srv.api_key}
        )
        assert made.status_code == 201, made.text  # deleted: created again
        assert editable(made.json()) == shipped["ai-toxicity-flag"]
        unknown = await http.post(
            "/moderation/rules/my-own-rule/reset", headers={"X-API-Key": srv.api_key}
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "ERR_NOT_FOUND"
        user = await http.post(
            "/moderation/rules/ai-toxicity/reset",
            headers={"Authorization": f"Bearer {await world.token(alice)}"},
        )
        assert user.status_code == 403, user.text
    shown = await rest.rule_defaults()
    assert {r["rule"]["id"]: r["stored"] for r in shown["rules"]}["ai-toxicity"] == "same"
    assert all(r["stored"] == "same" for r in shown["rules"]), shown["rules"]
    # the operator's edit stays in the revisions
    revisions = (await rest.rule_revisions("ai-toxicity"))["revisions"]
    assert [r["revision"] for r in revisions] == [3, 2, 1]
    assert revisions[1]["rule"]["enabled"] is False

    after = await rest.evaluate(insult, sender=alice, receiver=bob)
    assert after["verdict"]["status"] == "review", after["verdict"]
    assert {m["ruleId"] for m in after["verdict"]["matches"]} >= {"ai-toxicity", "ai-toxicity-flag"}


async def test_a_shipped_rule_whose_list_was_deleted_says_so_and_is_not_reset(
    world: World,
) -> None:
    rest = world.rest
    await rest.delete_rule("profanity")
    await rest.delete_list("profanity-en")
    shown = {r["rule"]["id"]: r for r in (await rest.rule_defaults())["rules"]}
    assert shown["profanity"]["stored"] == "missing"
    assert shown["profanity"]["missingLists"] == ["profanity-en"]
    assert shown["ai-toxicity"]["missingLists"] == []
    with pytest.raises(ServerError) as info:
        await rest.reset_rule("profanity")
    assert info.value.status == 400 and info.value.code == "ERR_BAD_REQUEST"
    assert "profanity" not in {r["id"] for r in await rest.list_rules()}
