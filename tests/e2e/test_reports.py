"""Reports as notices end to end (issue 15 item 2): a category, live routing to the group's
own moderators (who do not learn the reporter unless the app allows it), their list of open
reports, and escalation of reports nobody handled to the app moderators' queue."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from client.sdk import ServerError
from tests.conftest import ServerProcess, World, unique, world_on


async def group_with_staff(w: World) -> tuple[str, str, str, str, str]:
    """A group: owner, moderator, a reporter and a sender; (guid, owner, mod, reporter, sender)."""
    owner, mod = await w.user("own"), await w.user("gmod")
    reporter, sender = await w.user("rep"), await w.user("snd")
    guid = unique("g")
    await w.rest.create_group(guid, "G", owner=owner)
    await w.rest.add_member(guid, mod, scope="moderator")
    for uid in (reporter, sender):
        await w.rest.add_member(guid, uid)
    return guid, owner, mod, reporter, sender


async def report(w: World, uid: str, message_id: int, **body: Any) -> dict[str, Any]:
    async with w.user_rest(await w.token(uid)) as rest:
        result: dict[str, Any] = await rest.request(
            "POST", f"/messages/{message_id}/flag", json={"reason": "rude", **body}
        )
        return result


async def test_a_report_reaches_the_groups_moderators_live_without_the_reporter(
    world: World,
) -> None:
    guid, owner, mod, reporter, sender = await group_with_staff(world)
    m, o = await world.connect(mod), await world.connect(owner)
    r, s = await world.connect(reporter), await world.connect(sender)
    sent = await s.send_custom(guid, "n", {"t": "you are all idiots"}, receiver_type="group")

    with pytest.raises(ServerError) as err:
        await report(world, reporter, sent["id"], category="rudeness")
    assert err.value.status == 400 and err.value.details["field"] == "category"
    ack = await report(world, reporter, sent["id"], category="harassment", remarks="again")
    assert ack["reportId"] and ack["report"]["category"] == "harassment"

    for client in (m, o):
        frame = await client.next_event("report.new", timeout=5)
        assert frame.data["reportId"] == ack["reportId"] and frame.data["groupId"] == guid
        assert frame.data["messageId"] == sent["id"] and frame.data["category"] == "harassment"
        assert frame.data["reason"] == "rude" and frame.data["remarks"] == "again"
        assert "reporter" not in frame.data
    await r.expect_no_event("report.new", within=0.3)
    await s.expect_no_event("report.new", within=0.1)

    async with world.user_rest(await world.token(mod)) as rest:
        items = (await rest.request("GET", f"/groups/{guid}/reports"))["items"]
    [item] = [i for i in items if i["message"]["id"] == sent["id"]]
    assert [x["category"] for x in item["reports"]] == ["harassment"]
    assert all("reporter" not in x for x in item["reports"])
    for plain in (reporter, sender):
        async with world.user_rest(await world.token(plain)) as rest:
            with pytest.raises(ServerError) as err:
                await rest.request("GET", f"/groups/{guid}/reports")
            assert err.value.status == 403
    staff_view = (await world.rest.request("GET", f"/groups/{guid}/reports"))["items"]
    [item] = [i for i in staff_view if i["message"]["id"] == sent["id"]]
    assert item["reports"][0]["reporter"] == reporter  # app staff see who reported
    queue = await world.rest.queue("reported")
    [entry] = [e for e in queue["items"] if e["message"]["id"] == sent["id"]]
    assert entry["reports"][0]["category"] == "harassment"


@pytest.fixture(scope="module")
def escalating_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory(
        "--rate-limit", "0", "--report-escalation-seconds", "1", "--group-reports-show-reporter"
    )
    return srv


async def test_unhandled_reports_escalate_and_an_app_may_show_the_reporter(
    escalating_server: ServerProcess,
) -> None:
    async with world_on(escalating_server) as w:
        guid, _owner, mod, reporter, sender = await group_with_staff(w)
        m, s = await w.connect(mod), await w.connect(sender)
        sent = await s.send_custom(guid, "n", {"t": "spam spam"}, receiver_type="group")
        handled = await s.send_custom(guid, "n", {"t": "more spam"}, receiver_type="group")
        await report(w, reporter, sent["id"], category="spam")
        frame = await m.next_event("report.new", timeout=5)
        assert frame.data["reporter"] == reporter  # this app lets group moderators see it
        await report(w, reporter, handled["id"], category="spam")
        await w.rest.disapprove(handled["id"], reason="spam")  # handled at once

        async def escalated() -> list[int]:
            items = (await w.rest.queue("escalated"))["items"]
            return [i["message"]["id"] for i in items]

        for _ in range(40):
            if sent["id"] in await escalated():
                break
            await asyncio.sleep(0.25)
        ids = await escalated()
        assert sent["id"] in ids and handled["id"] not in ids
        assert ids.count(sent["id"]) == 1
        entries = (await w.rest.audit())["entries"]
        assert [e["target"] for e in entries if e["action"] == "report.escalate"].count(
            str(sent["id"])
        ) == 1
        # Deciding closes it in both states.
        await w.rest.approve(sent["id"])
        assert sent["id"] not in await escalated()


async def test_group_moderators_read_the_audit_of_their_group_only(world: World) -> None:
    guid, owner, mod, reporter, sender = await group_with_staff(world)
    other = unique("g")
    await world.rest.create_group(other, "Other", owner=owner)
    await world.rest.add_member(other, sender)
    await world.rest.kick(guid, sender)
    await world.rest.kick(other, sender)
    since = 0
    async with world.user_rest(await world.token(mod)) as rest:
        entries = (await rest.request("GET", f"/groups/{guid}/audit", params={"since": since}))[
            "entries"
        ]
        with pytest.raises(ServerError) as err:
            await rest.request("GET", f"/groups/{other}/audit")
        assert err.value.status == 403
    actions = {(e["action"], e["target"]) for e in entries}
    assert ("group.kicked", guid) in actions and ("decision.kick", sender) in actions
    assert all(e["target"] == guid or e["details"].get("scope") == f"group:{guid}" for e in entries)
    assert not any(other in (e["target"], e["details"].get("scope", "")[6:]) for e in entries)
    async with world.user_rest(await world.token(reporter)) as rest:
        with pytest.raises(ServerError) as err:
            await rest.request("GET", f"/groups/{guid}/audit")
        assert err.value.status == 403
