"""The review card (issue 17 item 4) against the real server: the message with the
conversation before it, the sender's history, the rule that held it and what the detectors
make of the text; and the dashboard's card actions (keyboard, bulk) in a real Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.sdk import ServerError
from tests.conftest import World, unique
from tests.e2e.cdp import launch
from tests.e2e.test_moderation_flow import word_rule
from tests.e2e.test_operators import Staff, held_in_queue, signed_in
from tests.e2e.test_web_dashboard import card, open_page, sign_in


async def test_the_card_shows_context_history_rule_and_scores(world: World) -> None:
    server = world.server
    word = unique("cardword")
    rule_id = await word_rule(world, word, ["review"])
    alice, bob = await world.user("carda"), await world.user("cardb")
    a = await world.connect(alice)
    b = await world.connect(bob)
    await a.send_text(bob, "hi bob")
    await b.send_text(alice, "hi alice, what's up?")
    sent = await a.send_text(bob, f"you {word} idiot")
    message_id = int(sent["id"])
    await held_in_queue(world, message_id)

    made: list[Staff] = []
    try:
        moderator, name = await signed_in(server, made, "moderator")
        muted = await moderator.call(
            "POST",
            f"/users/{alice}/restrictions",
            json={"kind": "mute", "until": 0, "reason": "cooling off"},
        )
        assert muted.status_code == 201, muted.text
        viewer, _ = await signed_in(server, made, "viewer")
        r = await viewer.call("GET", f"/moderation/messages/{message_id}/card?ruleId={rule_id}")
        assert r.status_code == 200, r.text
        got = r.json()
        assert got["message"]["id"] == message_id
        assert [m["text"] for m in got["context"]][-2:] == ["hi bob", "hi alice, what's up?"]
        assert got["sender"]["uid"] == alice
        assert any(
            x["kind"] == "mute" and x["by"] == f"operator:{name}"
            for x in got["history"]["restrictions"]
        )
        assert got["rule"]["id"] == rule_id and got["rule"]["actions"] == ["review"]
        assert got["detections"], "the local detectors score the text"
        insult = [d for d in got["detections"] if d["category"] == "insult"]
        assert insult and 0 <= insult[0]["confidence"] <= 1
        # Plain users get nothing; a missing message is a 404.
        async with world.user_rest(await world.token(bob)) as rb:
            with pytest.raises(ServerError) as denied:
                await rb.request("GET", f"/moderation/messages/{message_id}/card")
            assert denied.value.status == 403
        missing = await viewer.call("GET", "/moderation/messages/999999999/card")
        assert missing.status_code == 404
    finally:
        for s in made:
            await s.close()


async def test_keyboard_and_bulk_decisions_from_the_queue(world: World, tmp_path: Path) -> None:
    server = world.server
    word = unique("bulkword")
    await word_rule(world, word, ["review"])
    alice, bob = await world.user("bulka"), await world.user("bulkb")
    a = await world.connect(alice)
    ids = []
    for i in range(3):
        sent = await a.send_text(bob, f"{word} number {i}")
        ids.append(int(sent["id"]))
    for message_id in ids:
        await held_in_queue(world, message_id)
    made: list[Staff] = []
    _, name = await signed_in(server, made, "moderator")
    await made[0].close()
    async with launch(tmp_path) as browser:
        page = await open_page(browser, server.url + "/dashboard")
        await sign_in(page, name)
        await page.wait("document.getElementById('live-state').textContent === 'live'")
        for message_id in ids:
            await page.wait(f"{card(message_id)} !== null")
        # Keyboard: focus the first of ours, "a" approves it.
        await page.js(f"{card(ids[0])}.focus()")
        await page.js(
            "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'a', bubbles: true}))"
        )
        await page.wait(f"{card(ids[0])} === null")
        # Bulk: select the other two, approve them at once.
        await page.js("window.confirm = () => true")
        for message_id in ids[1:]:
            await page.js(f"{card(message_id)}.querySelector('.pick').click()")
        assert await page.js("document.getElementById('bulk-approve').textContent") == "Approve 2"
        await page.js("document.getElementById('bulk-disapprove').click()")
        for message_id in ids[1:]:
            await page.wait(f"{card(message_id)} === null")
    statuses = {}
    for message_id in ids:
        got = await world.rest.request("GET", f"/messages/{message_id}")
        statuses[message_id] = got["message"]["moderationStatus"]
    assert statuses == {ids[0]: "approved", ids[1]: "disapproved", ids[2]: "disapproved"}
    entries = (await world.rest.audit(since=0))["entries"]
    actors = {e["target"]: e["actor"] for e in entries if e["target"] in {str(i) for i in ids}}
    assert set(actors.values()) == {f"operator:{name}"}, json.dumps(actors)
