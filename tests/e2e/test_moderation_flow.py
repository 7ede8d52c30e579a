"""Moderation end to end: pending -> verdict, the review queue, reports, restarts, rule CRUD."""

from __future__ import annotations

import asyncio

import pytest

from client.sdk import ParleyClient, RestClient, ServerError
from tests.conftest import ServerProcess, World, unique


def rule(
    rule_id: str, *, list_id: str, actions: list[str], types: list[str] | None = None
) -> dict[str, object]:
    return {
        "id": rule_id,
        "name": f"Rule {rule_id}",
        "description": "test rule",
        "enabled": True,
        "filters": {},
        "match": "any",
        "conditions": [{"kind": "keywords", "messageTypes": types or ["text"], "listId": list_id}],
        "actions": actions,
    }


async def word_rule(world: World, word: str, actions: list[str]) -> str:
    list_id, rule_id = unique("l"), unique("r")
    await world.rest.create_list(
        {"id": list_id, "name": "test words", "kind": "keywords", "items": [word]}
    )
    await world.rest.create_rule(rule(rule_id, list_id=list_id, actions=actions))
    return rule_id


async def test_default_profanity_rule_blocks_and_never_delivers(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "you are a f.u.c.k.i.n.g idiot")
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == sent["id"]
    assert verdict.message["moderationStatus"] == "disapproved"
    assert verdict.data["moderation"]["ruleId"] and verdict.data["moderation"]["reason"]
    await b.expect_no_event("message", within=0.4)
    cid = sent["conversationId"]
    async with world.user_rest(await world.token(bob)) as rb:
        assert all(m["id"] != sent["id"] for m in await rb.history(cid))
    async with world.user_rest(await world.token(alice)) as ra:
        mine = [m for m in await ra.history(cid) if m["id"] == sent["id"]]
        assert mine and mine[0]["moderationStatus"] == "disapproved"
    queue = await world.rest.queue("disapproved")
    assert any(item["message"]["id"] == sent["id"] for item in queue["items"])


async def test_clean_message_is_acknowledged_pending_then_approved_and_delivered(
    world: World,
) -> None:
    # Under the default rules (all inline) a clean text is judged on the send path and
    # stored approved in the commit that stores it; the wire shows the same sequence as any
    # moderated send: message.sent (pending), message.moderated (approved), then delivery.
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, "see you at the station at noon")
    assert sent["moderationStatus"] == "pending"
    verdict = await a.next_event("message.moderated")
    assert verdict.message["id"] == sent["id"]
    assert verdict.message["moderationStatus"] == "approved"
    assert "moderation" not in verdict.data
    got = await b.next_event("message")
    assert got.message["id"] == sent["id"] and got.message["moderationStatus"] == "approved"
    assert got.message["text"] == "see you at the station at noon"
    await a.expect_no_event("message.moderated", within=0.3)  # exactly one verdict
    async with world.user_rest(await world.token(bob)) as rb:
        stored = [m for m in await rb.history(sent["conversationId"]) if m["id"] == sent["id"]]
        assert stored and stored[0]["moderationStatus"] == "approved"
    # No rule matched: the status records the decision; the audit log keeps decisions by
    # rules and people.
    entries = (await world.rest.audit(since=0))["entries"]
    assert all(e["target"] != str(sent["id"]) for e in entries)


async def test_review_action_holds_until_a_moderator_decides(world: World) -> None:
    word = unique("reviewme")
    await word_rule(world, word, ["review"])
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    held = await a.send_text(bob, f"please check {word} now")
    second = await a.send_text(bob, f"and {word} again")
    await b.expect_no_event("message", within=0.4)
    queue = await world.rest.queue("review")
    ids = {item["message"]["id"] for item in queue["items"]}
    assert {held["id"], second["id"]} <= ids
    moderator = await world.user("mod", role="moderator")
    async with world.user_rest(await world.token(moderator)) as rm:
        approved = await rm.approve(held["id"])
        assert approved["moderationStatus"] == "approved"
        await rm.disapprove(second["id"], reason="not today")
    got = await b.next_event("message")
    assert got.message["id"] == held["id"]
    v1 = await a.next_event("message.moderated", predicate=lambda e: e.message["id"] == held["id"])
    assert v1.message["moderationStatus"] == "approved"
    v2 = await a.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == second["id"]
    )
    assert v2.message["moderationStatus"] == "disapproved"
    # The moderator's note is for staff; the sender reads the statement of reasons.
    assert await world.staff_reason(second["id"]) == "not today"
    assert v2.data["moderation"]["reason"] == v2.data["decision"]["explanation"]
    assert v2.data["decision"]["source"] == "moderator"
    await b.expect_no_event("message", within=0.3)
    ids = {item["message"]["id"] for item in (await world.rest.queue("review"))["items"]}
    assert held["id"] not in ids and second["id"] not in ids
    entries = (await world.rest.audit(since=0))["entries"]
    assert any(
        e["action"] == "message.approved" and e["target"] == str(held["id"]) for e in entries
    )


async def test_flag_action_delivers_and_queues(world: World) -> None:
    word = unique("flagme")
    await word_rule(world, word, ["flag"])
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_text(bob, f"hello {word}")
    got = await b.next_event("message")
    assert got.message["id"] == sent["id"]
    flagged = await world.rest.queue("flagged")
    assert any(i["message"]["id"] == sent["id"] for i in flagged["items"])


async def test_user_report_over_ws_and_rest(world: World) -> None:
    alice, bob, carol = (
        await world.user("alice"),
        await world.user("bob"),
        await world.user("carol"),
    )
    a, b = await world.connect(alice), await world.connect(bob)
    sent = await a.send_custom(bob, "n", {"x": 1})
    await b.next_event("message")
    reply = await b.flag(sent["id"], "harassment", "keeps writing")
    assert reply["messageId"] == sent["id"]
    with pytest.raises(ServerError) as info:
        await b.flag(sent["id"], "harassment")
    assert info.value.code == "ERR_CONFLICT"
    async with world.user_rest(await world.token(carol)) as rc:
        with pytest.raises(ServerError) as info:
            await rc.flag_message(sent["id"], "spam")
        assert info.value.code == "ERR_NOT_FOUND"  # carol cannot see it
    reported = await world.rest.queue("reported")
    item = next(i for i in reported["items"] if i["message"]["id"] == sent["id"])
    assert item["reports"][0]["reason"] == "harassment" and item["reports"][0]["reporter"] == bob


async def test_rules_crud_revisions_and_validation(world: World) -> None:
    list_id = unique("l")
    await world.rest.create_list(
        {"id": list_id, "name": "w", "kind": "keywords", "items": ["zork"]}
    )
    rid = unique("r")
    created = await world.rest.create_rule(rule(rid, list_id=list_id, actions=["block"]))
    assert created["revision"] == 1
    body = {**created, "enabled": False}
    updated = await world.rest.update_rule(rid, body)
    assert updated["revision"] == 2 and updated["enabled"] is False
    revs = (await world.rest.rule_revisions(rid))["revisions"]
    assert [r["revision"] for r in revs] == [2, 1]
    with pytest.raises(ServerError) as info:
        await world.rest.create_rule(
            {**rule(unique("r"), list_id=list_id, actions=["block"]), "match": "most"}
        )
    assert info.value.code == "ERR_BAD_REQUEST" and "match" in str(info.value.details)
    with pytest.raises(ServerError) as info:
        await world.rest.create_rule(rule(unique("r"), list_id="no-such-list", actions=["block"]))
    assert info.value.code == "ERR_BAD_REQUEST"
    await world.rest.delete_rule(rid)
    with pytest.raises(ServerError) as info:
        await world.rest.request("GET", f"/moderation/rules/{rid}")
    assert info.value.code == "ERR_NOT_FOUND"


async def test_plain_user_gets_403_on_moderation_api(world: World) -> None:
    uid = await world.user("plain")
    async with world.user_rest(await world.token(uid)) as r:
        for call in (r.list_rules(), r.queue("review"), r.evaluate("hi"), r.audit(since=0)):
            with pytest.raises(ServerError) as info:
                await call
            assert info.value.code == "ERR_FORBIDDEN"


async def test_evaluate_and_dry_run(world: World) -> None:
    word = unique("dryword")
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    old = await a.send_text(bob, f"this has {word} in it")
    await a.next_event("message.moderated")
    rid = await word_rule(world, word, ["block"])
    result = await world.rest.evaluate(f"now {word}")
    assert result["verdict"]["status"] == "disapproved"
    assert any(m["ruleId"] == rid for m in result["verdict"]["matches"])
    assert all(0.0 <= d["confidence"] <= 1.0 for d in result["detections"])
    dry = await world.rest.dry_run(rid, days=1)
    assert [m["messageId"] for m in dry["matches"]] == [old["id"]]
    again = await world.rest.history(old["conversationId"])
    assert [m["moderationStatus"] for m in again if m["id"] == old["id"]] == ["approved"]


async def test_pending_messages_are_moderated_after_restart(
    server_factory: type[ServerProcess],
) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        await rest.create_user("rs-a", "A")
        await rest.create_user("rs-b", "B")
        await rest.create_list(
            {"id": "rs-words", "name": "w", "kind": "keywords", "items": ["quux"]}
        )
        await rest.create_rule(rule("rs-review", list_id="rs-words", actions=["review"]))
        async with ParleyClient(srv.ws_url, await rest.issue_token("rs-a")) as a:
            held = await a.send_text("rs-b", "quux here")
            await asyncio.sleep(0.3)
    srv.kill9()
    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        queue = await rest.queue("review")
        assert [i["message"]["id"] for i in queue["items"]] == [held["id"]]
        async with ParleyClient(srv.ws_url, await rest.issue_token("rs-b")) as b:
            await rest.approve(held["id"])
            got = await b.next_event("message")
            assert got.message["id"] == held["id"]
