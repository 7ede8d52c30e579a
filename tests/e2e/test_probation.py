"""New-account probation end to end (issue 15 item 4), on a server of its own (probation is
app-wide): a new user's first messages held for review, or refused when they carry links or
media; only admins set it."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from client.sdk import ServerError
from tests.conftest import ServerProcess, World, world_on


@pytest.fixture(scope="module")
def probation_server(server_factory: Any) -> ServerProcess:
    srv: ServerProcess = server_factory("--rate-limit", "0")
    return srv


@pytest.fixture
async def w(probation_server: ServerProcess) -> AsyncIterator[World]:
    async with world_on(probation_server) as world:
        yield world


async def test_the_first_messages_are_held_for_review_then_the_user_graduates(w: World) -> None:
    put = await w.rest.request(
        "PUT", "/moderation/probation", json={"messages": 2, "mode": "review"}
    )
    assert put == {"days": 0, "messages": 2, "mode": "review"}
    alice, bob = await w.user("pa"), await w.user("pb")
    a, b = await w.connect(alice), await w.connect(bob)
    held = [await a.send_text(bob, f"hello number {i}") for i in (1, 2)]
    for sent in held:
        assert sent["moderationStatus"] == "pending"
    await a.expect_no_event("message.moderated", within=0.5)
    await b.expect_no_event("message", within=0.1)
    queue = (await w.rest.queue("review"))["items"]
    mine = [i for i in queue if i["message"]["sender"] == alice]
    assert [i["message"]["id"] for i in mine] == [m["id"] for m in held]
    assert {i["ruleId"] for i in mine} == {"probation"}

    third = await a.send_text(bob, "third time")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == third["id"]
    )
    assert verdict.message["moderationStatus"] == "approved"  # graduated after two

    await w.rest.approve(held[0]["id"])
    got = await b.next_event("message", predicate=lambda e: e.message["id"] == held[0]["id"])
    assert got.message["text"] == "hello number 1"
    # A rule's block still blocks a user on probation.
    carol = await w.user("pc")
    c = await w.connect(carol)
    rude = await c.send_text(bob, "you are a f.u.c.k.i.n.g idiot")
    blocked = await c.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == rude["id"]
    )
    assert blocked.message["moderationStatus"] == "disapproved"
    await w.rest.request("PUT", "/moderation/probation", json={})  # off again


async def test_links_and_media_are_refused_in_the_first_days(w: World) -> None:
    await w.rest.request("PUT", "/moderation/probation", json={"days": 3, "mode": "no_links_media"})
    try:
        alice, bob = await w.user("pl"), await w.user("pm")
        a = await w.connect(alice)
        for text in ("visit www.cheap-pills.example now", "https://t.co/x", "go to spam.com"):
            with pytest.raises(ServerError) as err:
                await a.send_text(bob, text)
            assert err.value.code == "ERR_FORBIDDEN" and err.value.details["reason"] == "probation"
        plain = await a.send_text(bob, "just saying hi")
        assert plain["id"]
        picture = io.BytesIO()
        Image.new("RGB", (16, 16), "red").save(picture, "PNG")
        async with w.user_rest(await w.token(alice)) as rest:
            up = await rest.upload(picture.getvalue(), name="r.png")
        with pytest.raises(ServerError) as err:
            await a.send_media(bob, up["mediaId"], "image")
        assert err.value.details["reason"] == "probation"
    finally:
        await w.rest.request("PUT", "/moderation/probation", json={})


async def test_only_admins_set_probation(w: World) -> None:
    mod = await w.user("pmod", role="moderator")
    async with w.user_rest(await w.token(mod)) as rest:
        assert (await rest.request("GET", "/moderation/probation"))["mode"] == "review"
        with pytest.raises(ServerError) as err:
            await rest.request("PUT", "/moderation/probation", json={"days": 1})
        assert err.value.status == 403
    for body, field in (({"days": -1}, "days"), ({"messages": "3"}, "messages"),
                        ({"mode": "jail"}, "mode")):  # fmt: skip
        with pytest.raises(ServerError) as err:
            await w.rest.request("PUT", "/moderation/probation", json=body)
        assert err.value.status == 400 and err.value.details["field"] == field
