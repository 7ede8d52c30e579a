"""Decisions (statements of reasons), appeals, restrictions and reports end to end (issue 15),
against the real server, on both backends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from client.sdk import ParleyClient, RestClient, ServerError
from client.sdk.events import Event
from tests.conftest import ServerProcess, World, unique, world_on

DECISION_FIELDS = {
    "decisionId",
    "measure",
    "scope",
    "until",
    "source",
    "automatedDetection",
    "automatedDecision",
    "ground",
    "explanation",
    "appealUntil",
}


async def word_rule(world: World, word: str, sender: str) -> str:
    """A rule that blocks ``word`` from ``sender`` only (the server is shared)."""
    list_id, rule_id = unique("l"), unique("r")
    await world.rest.create_list(
        {"id": list_id, "name": "test words", "kind": "keywords", "items": [word]}
    )
    await world.rest.create_rule(
        {
            "id": rule_id,
            "name": f"Rule {rule_id}",
            "enabled": True,
            "filters": {"sender": {"uids": [sender]}},
            "match": "any",
            "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": list_id}],
            "actions": ["block"],
        }
    )
    return rule_id


async def blocked_send(
    world: World, a: ParleyClient, to: str, word: str
) -> tuple[dict[str, Any], Event]:
    sent = await a.send_text(to, f"you are a {word} indeed")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message.get("id") == sent["id"]
    )
    assert verdict.message["moderationStatus"] == "disapproved"
    return sent, verdict


async def test_disapproval_carries_a_statement_of_reasons(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    word = unique("zzbad")
    rule_id = await word_rule(world, word, alice)
    a = await world.connect(alice)
    sent, verdict = await blocked_send(world, a, bob, word)
    # Staff details stay where they were (the raw reason); the person gets the explanation.
    assert verdict.data["moderation"]["ruleId"] == rule_id
    decision = verdict.data["decision"]
    assert set(decision) >= DECISION_FIELDS
    assert decision["measure"] == "message_disapproved"
    assert decision["scope"] == "global" and decision["until"] == 0
    assert decision["source"] == "rule" and decision["ruleId"] == rule_id
    assert decision["ruleRevision"] == 1
    assert decision["automatedDetection"] is True and decision["automatedDecision"] is True
    assert decision["ground"] == {"type": "terms", "clause": "other"}
    assert word not in decision["explanation"] and decision["explanation"]
    assert decision["appealUntil"] > time.time() + 86_400 * 30
    async with world.user_rest(await world.token(alice)) as ra:
        mine = await ra.my_decisions()
    assert [d["decisionId"] for d in mine] == [decision["decisionId"]]
    assert mine[0] == decision
    async with world.user_rest(await world.token(bob)) as rb:
        assert (await rb.request("GET", "/me/decisions"))["decisions"] == []
    # Staff see the details in the strike history.
    strikes = await world.rest.request("GET", f"/users/{alice}/strikes")
    staff = strikes["decisions"][0]
    assert staff["details"]["reason"] and staff["messageId"] == sent["id"]


async def test_the_terms_catalogue_names_the_ground(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    word = unique("zzterm")
    rule_id = await word_rule(world, word, alice)
    clause = unique("clause")
    terms = (await world.rest.request("GET", "/moderation/terms"))["terms"]
    assert any(t["clause"] == "harassment" for t in terms)
    terms.append(
        {
            "clause": clause,
            "title": "Test",
            "explanation": "No test words here.",
            "rules": [rule_id],
        }
    )
    await world.rest.request("PUT", "/moderation/terms", json={"terms": terms})
    a = await world.connect(alice)
    _sent, verdict = await blocked_send(world, a, bob, word)
    decision = verdict.data["decision"]
    assert decision["ground"] == {"type": "terms", "clause": clause}
    assert decision["explanation"] == "No test words here."
    async with world.user_rest(await world.token(alice)) as ra:
        with pytest.raises(ServerError) as err:
            await ra.request("PUT", "/moderation/terms", json={"terms": terms})
    assert err.value.status == 403


async def test_kick_and_ban_send_moderation_decision(world: World) -> None:
    owner, bob = await world.user("owner"), await world.user("bob")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, bob)
    b = await world.connect(bob)
    await world.rest.kick(guid, bob)
    kicked = (await b.next_event("moderation.decision")).data["decision"]
    assert kicked["measure"] == "kick" and kicked["scope"] == f"group:{guid}"
    assert kicked["source"] == "moderator" and kicked["automatedDecision"] is False
    await world.rest.add_member(guid, bob)
    await world.rest.ban(guid, bob, reason="spamming links")
    banned = (await b.next_event("moderation.decision")).data["decision"]
    assert banned["measure"] == "ban" and set(banned) >= DECISION_FIELDS
    async with world.user_rest(await world.token(bob)) as rb:
        mine = (await rb.request("GET", "/me/decisions"))["decisions"]
    assert {d["measure"] for d in mine} == {"kick", "ban"}
    entries = (await world.rest.audit(since=0))["entries"]
    assert any(
        e["action"] == "decision.ban" and e["target"] == bob and e["actor"] == "api-key"
        for e in entries
    )


async def test_upheld_appeal_delivers_the_original_message(world: World) -> None:
    alice, bob, mallory = await world.user("alice"), await world.user("bob"), await world.user("m")
    word = unique("zzappeal")
    await word_rule(world, word, alice)
    a = await world.connect(alice)
    sent, verdict = await blocked_send(world, a, bob, word)
    decision_id = verdict.data["decision"]["decisionId"]
    async with world.user_rest(await world.token(mallory)) as rm:
        with pytest.raises(ServerError) as err:
            await rm.request("POST", f"/decisions/{decision_id}/appeal", json={"note": "hi"})
        assert err.value.status == 403
    async with world.user_rest(await world.token(alice)) as ra:
        created = await ra.request(
            "POST", f"/decisions/{decision_id}/appeal", json={"note": "it was a quote"}
        )
        assert created["state"] == "open" and created["appealId"]
        with pytest.raises(ServerError) as err:
            await ra.request("POST", f"/decisions/{decision_id}/appeal", json={"note": "again"})
        assert err.value.status == 409 and err.value.code == "ERR_CONFLICT"
    queue = await world.rest.queue("appeals")
    item = next(i for i in queue["items"] if i["appeal"]["appealId"] == created["appealId"])
    assert item["appeal"]["note"] == "it was a quote" and item["message"]["id"] == sent["id"]
    assert item["decision"]["details"]["reason"]  # staff see the rule's reason
    moderator = await world.user("mod", role="moderator")
    async with world.user_rest(await world.token(moderator)) as rmod:
        await rmod.request(
            "POST",
            f"/moderation/appeals/{created['appealId']}/decide",
            json={"outcome": "upheld", "reason": "a quote, not an insult"},
        )
        with pytest.raises(ServerError) as err:
            await rmod.request(
                "POST",
                f"/moderation/appeals/{created['appealId']}/decide",
                json={"outcome": "rejected", "reason": "twice"},
            )
        assert err.value.status == 409
    outcome = await a.next_event("moderation.appeal")
    assert outcome.data["appealId"] == created["appealId"]
    assert outcome.data["decisionId"] == decision_id
    assert (
        outcome.data["outcome"] == "upheld" and outcome.data["reason"] == "a quote, not an insult"
    )
    approved = await a.next_event(
        "message.moderated", predicate=lambda e: e.message.get("id") == sent["id"]
    )
    assert approved.message["moderationStatus"] == "approved"
    assert approved.message["sentAt"] == sent["sentAt"]
    # The receiver connects later and finds it, with its original id and sentAt.
    b = await world.connect(bob)
    async with world.user_rest(await world.token(bob)) as rb:
        found = [m for m in await rb.history(sent["conversationId"]) if m["id"] == sent["id"]]
    assert found and found[0]["sentAt"] == sent["sentAt"]
    assert found[0]["moderationStatus"] == "approved"
    await b.expect_no_event("message", within=0.2)
    assert all(
        i["appeal"]["appealId"] != created["appealId"]
        for i in (await world.rest.queue("appeals"))["items"]
    )


async def test_upheld_appeal_delivers_to_a_connected_receiver(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    word = unique("zzlive")
    await word_rule(world, word, alice)
    a, b = await world.connect(alice), await world.connect(bob)
    sent, verdict = await blocked_send(world, a, bob, word)
    await b.expect_no_event("message", within=0.3)
    decision_id = verdict.data["decision"]["decisionId"]
    async with world.user_rest(await world.token(alice)) as ra:
        created = await ra.appeal(decision_id, "x")
    await world.rest.decide_appeal(created["appealId"], "upheld", "fine")
    got = await b.next_event("message", predicate=lambda e: e.message.get("id") == sent["id"])
    assert got.message["sentAt"] == sent["sentAt"]


async def test_rejected_appeal_keeps_the_message_blocked(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    word = unique("zzrej")
    await word_rule(world, word, alice)
    a, b = await world.connect(alice), await world.connect(bob)
    sent, verdict = await blocked_send(world, a, bob, word)
    decision_id = verdict.data["decision"]["decisionId"]
    async with world.user_rest(await world.token(alice)) as ra:
        created = await ra.request("POST", f"/decisions/{decision_id}/appeal", json={})
    await world.rest.request(
        "POST",
        f"/moderation/appeals/{created['appealId']}/decide",
        json={"outcome": "rejected", "reason": "it is an insult"},
    )
    outcome = await a.next_event("moderation.appeal")
    assert outcome.data["outcome"] == "rejected" and outcome.data["reason"] == "it is an insult"
    await b.expect_no_event("message", within=0.3)
    assert (await world.rest.get_message(sent["id"]))["moderationStatus"] == "disapproved"
    strikes = await world.rest.strikes(alice)
    assert strikes["decisions"][0]["appeal"]["state"] == "rejected"


async def test_appeal_after_the_window_is_gone(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--rate-limit", "0", env={"PARLEY_APPEAL_WINDOW_SECONDS": "1"})  # type: ignore[call-arg]
    async with world_on(srv) as w:
        alice, bob = await w.user("alice"), await w.user("bob")
        word = unique("zzlate")
        await word_rule(w, word, alice)
        a = await w.connect(alice)
        _sent, verdict = await blocked_send(w, a, bob, word)
        decision = verdict.data["decision"]
        assert decision["appealUntil"] <= time.time() + 2
        await asyncio.sleep(max(0.0, decision["appealUntil"] - time.time()) + 1.1)
        async with w.user_rest(await w.token(alice)) as ra:
            with pytest.raises(ServerError) as err:
                await ra.request(
                    "POST", f"/decisions/{decision['decisionId']}/appeal", json={"note": "late"}
                )
        assert err.value.status == 410


async def test_mute_refuses_sends_and_stores_nothing(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a = await world.connect(alice)
    first = await a.send_text(bob, "before the mute")
    until = int(time.time()) + 600
    restriction = await world.rest.request(
        "POST",
        f"/users/{alice}/restrictions",
        json={"kind": "mute", "until": until, "reason": "cooling off"},
    )
    assert restriction["restrictionId"] and restriction["kind"] == "mute"
    notice = (await a.next_event("moderation.decision")).data["decision"]
    assert notice["measure"] == "mute" and notice["until"] == until
    assert notice["decisionId"] == restriction["decisionId"]
    with pytest.raises(ServerError) as err:
        await a.send_text(bob, "while muted")
    assert err.value.code == "ERR_MUTED" and err.value.details["until"] == until
    async with world.user_rest(await world.token(alice)) as ra:
        with pytest.raises(ServerError) as err:
            await ra.send_message(
                receiver=bob, receiverType="user", category="message", messageType="text", text="x"
            )
        assert err.value.status == 403 and err.value.code == "ERR_MUTED"
        texts = [m["text"] for m in await ra.history(first["conversationId"])]
    assert texts == ["before the mute"]
    lifted = await world.rest.lift_restriction(alice, restriction["restrictionId"])
    assert lifted["liftedAt"] > 0
    await a.send_text(bob, "after the mute")
    # A user cannot restrict anyone.
    async with world.user_rest(await world.token(bob)) as rb:
        with pytest.raises(ServerError) as err:
            await rb.request(
                "POST", f"/users/{alice}/restrictions", json={"kind": "mute", "until": 0}
            )
        assert err.value.status == 403


async def test_group_mute_and_appeal_that_lifts_it(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=bob)
    await world.rest.add_member(guid, alice)
    a = await world.connect(alice)
    restriction = await world.rest.restrict(alice, "mute", guid=guid, reason="flooding")
    assert restriction["scope"] == f"group:{guid}"
    with pytest.raises(ServerError) as err:
        await a.send_text(guid, "in the group", receiver_type="group")
    assert err.value.code == "ERR_MUTED" and err.value.details["until"] == 0
    await a.send_text(bob, "a direct message still goes")
    async with world.user_rest(await world.token(alice)) as ra:
        created = await ra.request(
            "POST", f"/decisions/{restriction['decisionId']}/appeal", json={"note": "sorry"}
        )
    await world.rest.request(
        "POST",
        f"/moderation/appeals/{created['appealId']}/decide",
        json={"outcome": "upheld", "reason": "lifted"},
    )
    assert (await a.next_event("moderation.appeal")).data["outcome"] == "upheld"
    await a.send_text(guid, "back in the group", receiver_type="group")


async def test_shadow_ban_hides_messages_from_everyone_else(world: World) -> None:
    spammer, bob, carol = await world.user("spam"), await world.user("bob"), await world.user("c")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=carol)
    await world.rest.add_member(guid, spammer)
    await world.rest.add_member(guid, bob)
    s, b, c = await world.connect(spammer), await world.connect(bob), await world.connect(carol)
    restriction = await world.rest.request(
        "POST",
        f"/users/{spammer}/restrictions",
        json={"kind": "shadow_ban", "until": 0, "reason": "bot"},
    )
    direct = await s.send_text(bob, "buy cheap stuff")
    verdict = await s.next_event(
        "message.moderated", predicate=lambda e: e.message.get("id") == direct["id"]
    )
    assert verdict.message["moderationStatus"] == "approved"
    in_group = await s.send_text(guid, "buy cheap stuff everyone", receiver_type="group")
    await s.typing(bob)
    await b.expect_no_event("message", "typing", within=0.5)
    await c.expect_no_event("message", within=0.1)
    # The spammer sees their own messages; nobody else does.
    async with world.user_rest(await world.token(spammer)) as rs:
        assert any(m["id"] == direct["id"] for m in await rs.history(direct["conversationId"]))
        assert any(m["id"] == in_group["id"] for m in await rs.history(in_group["conversationId"]))
        assert (await rs.request("GET", "/me/decisions"))["decisions"] == []
        with pytest.raises(ServerError) as err:
            await rs.request("POST", f"/decisions/{restriction['decisionId']}/appeal", json={})
        assert err.value.status == 404
    async with world.user_rest(await world.token(bob)) as rb:
        assert all(m["id"] != direct["id"] for m in await rb.history(direct["conversationId"]))
        assert all(m["id"] != in_group["id"] for m in await rb.history(in_group["conversationId"]))
        with pytest.raises(ServerError) as err:
            await rb.get_message(direct["id"])
        assert err.value.status == 404
    # Nor do the spammer's receipts reach anyone.
    from_bob = await b.send_text(spammer, "who are you?")
    await s.next_event("message", predicate=lambda e: e.message.get("id") == from_bob["id"])
    await s.receipt(from_bob["id"], "read")
    await b.expect_no_event("receipt", within=0.4)
    # Staff see it (and the decision, in the strike history).
    assert (await world.rest.get_message(direct["id"]))["id"] == direct["id"]
    strikes = await world.rest.request("GET", f"/users/{spammer}/strikes")
    assert strikes["decisions"][0]["measure"] == "shadow_ban"
    assert strikes["decisions"][0]["notified"] is False
    # Lifted: new messages flow again; the old ones stay hidden.
    await world.rest.request(
        "DELETE", f"/users/{spammer}/restrictions/{restriction['restrictionId']}"
    )
    await asyncio.sleep(1.05)  # the ban's end and the next message fall in different seconds
    after = await s.send_text(bob, "hello again")
    got = await b.next_event("message")
    assert got.message["id"] == after["id"]
    async with world.user_rest(await world.token(bob)) as rb:
        ids = [m["id"] for m in await rb.history(direct["conversationId"])]
    assert ids == [from_bob["id"], after["id"]]


async def test_slow_mode_limits_each_member(world: World) -> None:
    owner, alice, bob = await world.user("owner"), await world.user("alice"), await world.user("b")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, alice)
    await world.rest.add_member(guid, bob)
    async with world.user_rest(await world.token(alice)) as ra:
        with pytest.raises(ServerError) as err:
            await ra.request("PATCH", f"/groups/{guid}", json={"slowModeSeconds": 30})
        assert err.value.status == 403
    async with world.user_rest(await world.token(owner)) as ro:
        changed = await ro.request("PATCH", f"/groups/{guid}", json={"slowModeSeconds": 30})
    assert changed == {"guid": guid, "slowModeSeconds": 30}
    a, b = await world.connect(alice), await world.connect(bob)
    await a.send_text(guid, "first", receiver_type="group")
    with pytest.raises(ServerError) as err:
        await a.send_text(guid, "second", receiver_type="group")
    assert err.value.code == "ERR_RATE_LIMITED" and 0 < err.value.details["retryAfterMs"] <= 30_000
    await b.send_text(guid, "bob's first", receiver_type="group")
    await a.send_text(bob, "direct messages are not slowed")
    await world.rest.set_slow_mode(guid, 0)
    await a.send_text(guid, "slow mode off", receiver_type="group")
    with pytest.raises(ServerError) as err:
        await world.rest.request("PATCH", f"/groups/{guid}", json={"slowModeSeconds": -1})
    assert err.value.status == 400


async def test_report_gets_an_id_and_an_outcome(world: World) -> None:
    alice, bob = await world.user("alice"), await world.user("bob")
    a, b = await world.connect(alice), await world.connect(bob)
    rude = await a.send_text(bob, "a rude remark")
    fine = await a.send_text(bob, "a fine remark")
    async with world.user_rest(await world.token(bob)) as rb:
        report1 = await rb.flag_message(rude["id"], "harassment", "rude")
        report2 = await rb.flag_message(fine["id"], "spam")
    assert isinstance(report1["reportId"], int) and isinstance(report2["reportId"], int)
    await world.rest.disapprove(rude["id"], reason="rude")
    actioned = await b.next_event("report.outcome")
    assert actioned.data["reportId"] == report1["reportId"]
    assert actioned.data["outcome"] == "actioned" and actioned.data["decisionId"]
    decision = (
        await a.next_event(
            "message.moderated",
            predicate=lambda e: (
                e.message.get("id") == rude["id"] and e.message["moderationStatus"] == "disapproved"
            ),
        )
    ).data["decision"]
    assert decision["decisionId"] == actioned.data["decisionId"]
    assert decision["source"] == "report" and decision["automatedDecision"] is False
    assert "alice" not in str(actioned.data)  # nothing about the reported user
    await world.rest.approve(fine["id"])
    kept = await b.next_event("report.outcome")
    assert kept.data == {
        "type": "report.outcome",
        "reportId": report2["reportId"],
        "messageId": fine["id"],
        "outcome": "not_actioned",
    }


async def test_restrictions_survive_a_restart(server_factory: type[ServerProcess]) -> None:
    srv = server_factory("--rate-limit", "0")  # type: ignore[call-arg]
    async with world_on(srv) as w:
        alice, bob = await w.user("alice"), await w.user("bob")
        await w.rest.request(
            "POST", f"/users/{alice}/restrictions", json={"kind": "mute", "until": 0}
        )
    srv.stop()
    srv.start()
    async with RestClient(srv.url, api_key=srv.api_key) as rest:
        token = await rest.issue_token(alice)
    async with ParleyClient(srv.ws_url, token) as a:
        with pytest.raises(ServerError) as err:
            await a.send_text(bob, "still muted")
        assert err.value.code == "ERR_MUTED"


async def test_a_rule_kick_is_explained_as_the_rule_s(world: World) -> None:
    owner, alice = await world.user("owner"), await world.user("alice")
    guid = unique("g")
    await world.rest.create_group(guid, "G", owner=owner)
    await world.rest.add_member(guid, alice)
    word, list_id, rule_id = unique("zzkick"), unique("l"), unique("r")
    await world.rest.create_list(
        {"id": list_id, "name": "test words", "kind": "keywords", "items": [word]}
    )
    await world.rest.create_rule(
        {
            "id": rule_id,
            "name": "kick on word",
            "enabled": True,
            "filters": {"sender": {"uids": [alice]}},
            "match": "any",
            "conditions": [{"kind": "keywords", "messageTypes": ["text"], "listId": list_id}],
            "actions": ["block", "kick"],
        }
    )
    a = await world.connect(alice)
    await a.send_text(guid, f"hey {word}", receiver_type="group")
    decision = (await a.next_event("moderation.decision")).data["decision"]
    assert decision["measure"] == "kick" and decision["source"] == "rule"
    assert decision["ruleId"] == rule_id and decision["ruleRevision"] == 1
    assert decision["automatedDecision"] is True and decision["scope"] == f"group:{guid}"
