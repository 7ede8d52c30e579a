"""The demo chat client (``/``) and the moderator dashboard in a real browser: Playwright
driving Debian's Chromium against the real server (issue 16 item 4).

Each user gets a browser context of their own (separate storage, like separate devices).
Screenshots of every scenario land in ``test-screenshots/`` (git-ignored) for review.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

from playwright.async_api import Browser, WebSocketRoute, expect

from tests.conftest import ServerProcess, World, unique, world_on
from tests.e2e.test_decisions import word_rule as decisions_word_rule
from tests.e2e.test_moderation_flow import word_rule
from tests.e2e.web import (
    any_bubble,
    bubbles,
    conversation_id,
    dashboard_sign_in,
    expect_connected,
    inbox_item,
    new_page,
    open_chat,
    page_errors,
    send,
    shot,
    sign_in,
    start_chat_by_search,
)


async def friends(world: World, *prefixes: str) -> list[str]:
    """Users who share a group: by default the directory shows a user only those."""
    uids = [await world.user(p) for p in prefixes]
    guid = unique("club")
    await world.rest.create_group(guid, "Club", owner=uids[0])
    for uid in uids[1:]:
        await world.rest.add_member(guid, uid)
    return uids


async def test_two_users_chat_with_inbox_search_grouping_and_ticks_kept_after_reload(
    world: World, browser: Browser
) -> None:
    alice, bob = await friends(world, "alice", "bob")
    url = world.server.url
    a, b = await new_page(browser), await new_page(browser)
    await sign_in(a, url, await world.token(alice))
    await sign_in(b, url, await world.token(bob))
    cid = conversation_id(alice, bob)

    # Alice finds Bob in the directory by the start of his name: no uid to type.
    await start_chat_by_search(a, bob.title()[:6], bob)
    await expect(a.locator("#conv-title")).to_have_text(bob.title())
    await send(a, "hello bob")
    await send(a, "are you there?")
    await expect(bubbles(a, "are you there?")).to_have_count(1)

    # Bob's inbox gets the conversation live: preview, time and an unread badge of 2.
    item = inbox_item(b, cid)
    await expect(item.locator(".unread")).to_have_text("2")
    await expect(item.locator(".preview")).to_have_text("are you there?")
    await expect(item.locator(".time")).not_to_be_empty()
    await shot(b, "chat-1-inbox-unread")
    await open_chat(b, cid)
    await expect(bubbles(b, "hello bob")).to_have_count(1)
    # One day separator; Bob's second message from Alice joins the first's group.
    await expect(b.locator("#messages .day-sep")).to_have_text(["Today"])
    await expect(bubbles(b, "are you there?")).to_have_class(re.compile(r"\bcont\b"))
    await expect(item.locator(".unread")).to_have_count(0)
    await send(b, "hi alice")
    await expect(bubbles(a, "hi alice")).to_have_count(1)

    # Bob read both: Alice sees the read ticks...
    await expect(a.locator("#messages .msg.mine .ticks.read")).to_have_count(2)
    await shot(a, "chat-2-sender-ticks")
    # ...and still sees them on another device, where the inbox comes from the server.
    a2 = await new_page(browser)
    await sign_in(a2, url, await world.token(alice))
    await expect(inbox_item(a2, cid).locator(".preview")).to_have_text("hi alice")
    await open_chat(a2, cid)
    await expect(bubbles(a2, "hello bob").locator(".ticks.read")).to_have_count(1)
    await expect(bubbles(a2, "are you there?").locator(".ticks.read")).to_have_count(1)
    await shot(a2, "chat-3-other-device")
    for page in (a, b, a2):
        assert not page_errors(page), page_errors(page)
        await page.context.close()


# Records every state a message bubble is drawn in (the list is re-rendered on each change).
WATCH_STATES = """(text) => {
  window.seenStates = [];
  new MutationObserver(() => {
    for (const node of document.querySelectorAll('#messages .msg')) {
      const body = node.querySelector('.body');
      if (!body || body.textContent !== text) continue;
      const state = node.classList.contains('disapproved') ? 'blocked'
        : node.classList.contains('pending') ? 'pending'
        : node.classList.contains('sending') ? 'sending' : 'shown';
      if (window.seenStates.at(-1) !== state) window.seenStates.push(state);
    }
  }).observe(document.getElementById('messages'), {childList: true, subtree: true});
}"""


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


async def test_profane_message_is_pending_then_blocked_for_its_sender_and_never_reaches_the_receiver(
    world: World, browser: Browser
) -> None:
    alice, bob = await friends(world, "alice", "bob")
    url, cid = world.server.url, conversation_id(alice, bob)
    a, b = await new_page(browser), await new_page(browser)
    await sign_in(a, url, await world.token(alice))
    await sign_in(b, url, await world.token(bob))
    await start_chat_by_search(a, bob, bob)
    await start_chat_by_search(b, alice, alice)

    rude = "you are a f.u.c.k.i.n.g idiot"
    await a.evaluate(WATCH_STATES, rude)
    await send(a, rude)
    blocked = bubbles(a, rude)
    await expect(blocked.locator(".badge.disapproved")).to_have_text("blocked")
    reason = (await blocked.locator(".reason").inner_text()).strip()
    assert reason.startswith("Blocked: ") and len(reason) > len("Blocked: ")
    states = await a.evaluate("window.seenStates")
    assert "pending" in states and states[-1] == "blocked", states
    assert states.index("pending") < states.index("blocked"), states

    # The notice of the block sits clear of the composer and its Send button.
    toast = a.locator("#toasts .toast", has_text="Your message was blocked")
    await expect(toast).to_be_visible()
    toast_box, composer_box = (
        await toast.bounding_box(),
        await a.locator("#composer").bounding_box(),
    )
    assert toast_box and composer_box and not boxes_overlap(toast_box, composer_box)
    header_box = await a.locator(".conv-header").bounding_box()  # nor the header's buttons
    assert header_box and not boxes_overlap(toast_box, header_box), (toast_box, header_box)
    await shot(a, "blocked-1-sender")

    # A clean message sent after it reaches Bob; the blocked one never does, nor his inbox.
    await send(a, "sorry, I take that back")
    await expect(bubbles(b, "sorry, I take that back")).to_have_count(1)
    await expect(any_bubble(b, rude)).to_have_count(0)
    assert rude not in await b.locator("#conv-list").inner_text()
    await shot(b, "blocked-2-receiver")

    # After a reload the sender still sees it blocked, with the same reason (from history).
    await a.reload()
    await expect_connected(a)
    await open_chat(a, cid)
    await expect(bubbles(a, rude).locator(".reason")).to_have_text(reason)
    await expect(bubbles(a, rude).locator(".badge.disapproved")).to_have_text("blocked")
    await shot(a, "blocked-3-sender-after-reload")
    for page in (a, b):
        assert not page_errors(page), page_errors(page)
        await page.context.close()


async def test_moderator_approves_a_held_message_in_the_dashboard_and_it_appears_live(
    world: World, browser: Browser
) -> None:
    word = unique("holdme").replace("-", "")
    await word_rule(world, word, ["review"])
    alice, bob = await friends(world, "alice", "bob")
    url = world.server.url
    a, b, mod = await new_page(browser), await new_page(browser), await new_page(browser)
    await sign_in(a, url, await world.token(alice))
    await sign_in(b, url, await world.token(bob))
    await start_chat_by_search(a, bob, bob)
    await start_chat_by_search(b, alice, alice)

    text = f"please check {word}"
    await send(a, text)
    await expect(bubbles(a, text).locator(".badge.pending")).to_be_visible()
    await dashboard_sign_in(mod, url, world.server.api_key)
    card = mod.locator("#queue-items .card", has_text=text)
    await expect(card).to_be_visible()
    await expect(any_bubble(b, text)).to_have_count(0)  # held: Bob has not got it
    await shot(mod, "review-1-dashboard")
    await card.get_by_role("button", name="Approve", exact=True).click()
    await expect(card).to_have_count(0)

    # Bob's open page shows it at once; Alice's copy loses its "pending" badge.
    await expect(bubbles(b, text)).to_have_count(1)
    await expect(bubbles(a, text).locator(".badge.pending")).to_have_count(0)
    await shot(b, "review-2-receiver")
    for page in (a, b, mod):
        assert not page_errors(page), page_errors(page)
        await page.context.close()


async def test_phone_viewport_inbox_conversation_composer_and_toasts(
    world: World, browser: Browser
) -> None:
    alice, bob = await friends(world, "alice", "bob")
    url = world.server.url
    p = await new_page(browser, phone=True)
    await sign_in(p, url, await world.token(alice))
    width = await p.evaluate("document.documentElement.clientWidth")
    assert width == 390
    # The inbox takes the whole width; nothing scrolls sideways.
    await expect(p.locator(".sidebar")).to_be_visible()
    await expect(p.locator(".conversation")).to_be_hidden()
    await shot(p, "phone-1-inbox")
    await start_chat_by_search(p, bob.title()[:6], bob)
    await expect(p.locator(".sidebar")).to_be_hidden()
    await send(p, "hello from a phone")
    await expect(bubbles(p, "hello from a phone")).to_have_count(1)
    assert await p.evaluate("document.documentElement.scrollWidth") <= 390

    # The composer and its Send button are on screen, and its hint is not cut off.
    viewport = {"x": 0, "y": 0, "width": 390, "height": 844}
    send_box = await p.locator("#composer button[type=submit]").bounding_box()
    assert send_box and send_box["x"] + send_box["width"] <= 390
    assert send_box["y"] + send_box["height"] <= 844
    hint_fits = await p.evaluate(
        """() => {
          const t = document.getElementById('composer-text');
          const style = getComputedStyle(t);
          const ctx = document.createElement('canvas').getContext('2d');
          ctx.font = `${style.fontSize} ${style.fontFamily}`;
          const room = t.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return ctx.measureText(t.placeholder).width <= room;
        }"""
    )
    assert hint_fits
    # The connection state in the top bar is shown whole, not cut to "connect…".
    conn = p.locator(".topbar .conn")
    assert await conn.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1")
    conn_box = await conn.bounding_box()
    assert conn_box and conn_box["x"] + conn_box["width"] <= 390
    await shot(p, "phone-2-conversation")

    # An error toast (a uid that does not exist) stays clear of the composer.
    await p.click("#back")
    await p.fill("#open-id", "nobody-" + uuid.uuid4().hex[:8])
    await p.press("#open-id", "Enter")
    await send(p, "anyone there?")
    toast = p.locator("#toasts .toast").first
    await expect(toast).to_be_visible()
    toast_box, composer_box = (
        await toast.bounding_box(),
        await p.locator("#composer").bounding_box(),
    )
    assert toast_box and composer_box and not boxes_overlap(toast_box, composer_box)
    assert boxes_overlap(toast_box, viewport)
    header_box = await p.locator(".conv-header").bounding_box()  # nor over the way back
    assert header_box and not boxes_overlap(toast_box, header_box), (toast_box, header_box)
    await shot(p, "phone-3-toast")
    assert not page_errors(p), page_errors(p)
    await p.context.close()


async def test_reconnect_after_a_lost_ack_and_a_server_restart_loses_and_duplicates_nothing(
    server_factory: Any, browser: Browser
) -> None:
    srv: ServerProcess = server_factory("--rate-limit", "0")  # restarted below: not shared
    async with world_on(srv) as world:
        alice, bob = await world.user("alice"), await world.user("bob")
        cid = conversation_id(alice, bob)
        a, b = await new_page(browser), await new_page(browser)

        # Alice's socket goes through a relay that can lose the server's acknowledgement of a
        # send and then drop the connection: the server stored the message, Alice never knew.
        cut: dict[str, Any] = {"next_ack": False, "lost": None}
        drops: list[asyncio.Task[None]] = []

        async def relay(ws: WebSocketRoute) -> None:
            server = ws.connect_to_server()

            async def drop() -> None:
                await ws.close(code=4000, reason="network drop")
                await server.close()

            def to_page(raw: str | bytes) -> None:
                frame = json.loads(raw) if isinstance(raw, str) else {}
                if cut["next_ack"] and frame.get("type") == "message.sent":
                    cut["next_ack"], cut["lost"] = False, frame["message"]
                    drops.append(asyncio.ensure_future(drop()))
                    return
                ws.send(raw)

            ws.on_message(server.send)
            server.on_message(to_page)

        await a.route_web_socket(re.compile(r"/ws$"), relay)
        await sign_in(a, srv.url, await world.token(alice))
        await sign_in(b, srv.url, await world.token(bob))
        for page, peer in ((a, bob), (b, alice)):  # a uid typed in full opens the chat too
            await page.fill("#open-id", peer)
            await page.press("#open-id", "Enter")
            await expect(page.locator("#composer")).to_be_visible()

        cut["next_ack"] = True
        await send(a, "one")
        await expect(a.locator("#conn-text")).to_contain_text("offline")
        await expect_connected(a)
        await expect(any_bubble(a, "one")).to_have_count(1)
        await expect(bubbles(a, "one")).to_have_count(1)  # acknowledged on the resend
        await expect(bubbles(b, "one")).to_have_count(1)
        assert cut["lost"] is not None
        await asyncio.gather(*drops)
        assert await bubbles(a, "one").get_attribute("data-id") == str(cut["lost"]["id"])

        # The server goes down; Alice keeps writing; Bob is sent a message while it restarts.
        await asyncio.to_thread(srv.stop)
        await expect(a.locator("#conn-text")).to_contain_text("offline")
        await send(a, "two")
        await send(a, "three")
        await expect(a.locator("#messages .msg.sending")).to_have_count(2)
        await shot(a, "reconnect-1-offline")
        await asyncio.to_thread(srv.start)
        await world.rest.send_message(
            sender=bob,
            receiver=alice,
            receiverType="user",
            category="message",
            messageType="text",
            text="sent while you reconnected",
            muid=str(uuid.uuid4()),
        )
        for page in (a, b):
            await expect_connected(page)
        texts = ["one", "two", "three", "sent while you reconnected"]
        for page in (a, b):
            for text in texts:
                await expect(bubbles(page, text)).to_have_count(1)
        await expect(a.locator("#messages .msg.sending, #messages .msg.failed")).to_have_count(0)
        await shot(a, "reconnect-2-back")
        await shot(b, "reconnect-3-receiver")

        # The server holds each exactly once.
        async with world.user_rest(await world.token(alice)) as rest:
            stored = [m["text"] for m in await rest.history(cid)]
        assert sorted(stored) == sorted(texts)
        for page in (a, b):
            assert not page_errors(page), page_errors(page)
            await page.context.close()


async def test_a_blocked_sender_reads_why_appeals_and_sees_the_outcome(
    world: World, browser: Browser
) -> None:
    """The statement of reasons in plain words on the blocked message, an Appeal button with
    a note, and the upheld appeal delivering the message to the receiver's page."""
    alice, bob = await friends(world, "alice", "bob")
    word = unique("zzappealweb")
    await decisions_word_rule(world, word, alice)
    url = world.server.url
    a, b = await new_page(browser), await new_page(browser)
    await sign_in(a, url, await world.token(alice))
    await sign_in(b, url, await world.token(bob))
    await start_chat_by_search(a, bob, bob)
    await start_chat_by_search(b, alice, alice)

    text = f"this is {word} honestly"
    await send(a, text)
    blocked = bubbles(a, text)
    await expect(blocked.locator(".badge.disapproved")).to_have_text("blocked")
    async with world.user_rest(await world.token(alice)) as rest:
        [decision] = [
            d
            for d in (await rest.request("GET", "/me/decisions"))["decisions"]
            if d.get("messageId") == (await rest.history(conversation_id(alice, bob)))[-1]["id"]
        ]
    await expect(blocked.locator(".reason")).to_have_text(f"Blocked: {decision['explanation']}")
    assert word not in decision["explanation"]  # plain words, not the matched term

    await blocked.locator(".appeal-button").click()
    await a.locator("#dialog-text").fill("I was quoting a film")
    await a.locator("#dialog-ok").click()
    await expect(blocked.locator(".appeal")).to_have_text("Appeal sent: a moderator will decide.")
    await shot(a, "appeal-1-sent")

    [item] = [
        i
        for i in (await world.rest.queue("appeals"))["items"]
        if i["decision"]["decisionId"] == decision["decisionId"]
    ]
    assert item["appeal"]["note"] == "I was quoting a film"
    await world.rest.request(
        "POST",
        f"/moderation/appeals/{item['appeal']['appealId']}/decide",
        json={"outcome": "upheld", "reason": "a quote, fine"},
    )
    await expect(a.locator("#toasts .toast", has_text="Your appeal was upheld")).to_be_visible()
    await expect(bubbles(a, text).locator(".badge.disapproved")).to_have_count(0)
    await expect(bubbles(b, text)).to_have_count(1)  # delivered live to the receiver
    await shot(a, "appeal-2-upheld")
    for page in (a, b):
        assert not page_errors(page), page_errors(page)
        await page.context.close()


async def test_reactions_and_replies_live_and_after_reload(world: World, browser: Browser) -> None:
    alice, bob = await friends(world, "alice", "bob")
    url, cid = world.server.url, conversation_id(alice, bob)
    a, b = await new_page(browser), await new_page(browser)
    await sign_in(a, url, await world.token(alice))
    await sign_in(b, url, await world.token(bob))
    await start_chat_by_search(a, bob, bob)
    await start_chat_by_search(b, alice, alice)
    await send(a, "who is in for pizza")
    on_b = bubbles(b, "who is in for pizza")
    await expect(on_b).to_have_count(1)

    await on_b.locator(".reaction.add", has_text="👍").click()
    await expect(bubbles(a, "who is in for pizza").locator(".reaction")).to_contain_text(["👍 1"])
    await expect(on_b.locator(".reaction.mine")).to_have_text("👍 1")

    await on_b.locator("button", has_text="Reply").click()
    await expect(b.locator("#reply-bar")).to_be_visible()
    await send(b, "me, always")
    reply_on_a = bubbles(a, "me, always")
    await expect(reply_on_a.locator(".reply-to")).to_have_text("↳ reply to who is in for pizza")
    await expect(bubbles(a, "who is in for pizza").locator(".reply-count")).to_have_text("1 reply")
    await expect(b.locator("#reply-bar")).to_be_hidden()
    await shot(a, "reactions-1-live")

    # From history after a reload: the count, whose reaction it is, and the thread.
    await b.reload()
    await expect_connected(b)
    await open_chat(b, cid)
    again = bubbles(b, "who is in for pizza")
    await expect(again.locator(".reaction.mine")).to_have_text("👍 1")
    await expect(again.locator(".reply-count")).to_have_text("1 reply")
    await again.locator(".reaction.mine").click()  # and take it back
    await expect(
        bubbles(a, "who is in for pizza").locator(".reaction", has_text="👍 1")
    ).to_have_count(0)
    await shot(b, "reactions-2-after-reload")
    for page in (a, b):
        assert not page_errors(page), page_errors(page)
        await page.context.close()


async def test_an_admin_adds_known_bad_images_to_a_hash_list_in_the_dashboard(
    world: World, browser: Browser
) -> None:
    """Issue 12 item 7 from the dashboard: images chosen in the list editor are hashed by the
    server into the image_hashes list (tests/e2e/test_image_hashes.py blocks their copies)."""
    from tests.e2e.test_image_hashes import encode
    from tests.moderation.test_phash import photo

    list_id = unique("bad-images")
    await world.rest.create_list({"id": list_id, "kind": "image_hashes", "items": []})
    page = await new_page(browser)
    await dashboard_sign_in(page, world.server.url, world.server.api_key, role="admin")
    await page.click(".tabs [data-tab=lists]")
    row = page.locator("#lists-body tr", has_text=list_id)
    await row.get_by_role("button", name="Edit").click()
    await expect(page.locator("#list-images-field")).to_be_visible()
    pictures = [
        {"name": f"p{i}.png", "mimeType": "image/png", "buffer": encode(photo(40 + i, (320, 240)))}
        for i in range(2)
    ]
    await page.set_input_files("#list-images", pictures)
    # Each image gives its hash and those of two centre crops (docs/protocol.md).
    status = page.locator("#list-images-status")
    await expect(status).to_have_text(re.compile(r"^\d+ new hashes from 2 images\.$"))
    added = int((await status.inner_text()).split()[0])
    items = (await page.locator("#list-items").input_value()).split("\n")
    assert len(items) == added >= 2 and all(re.fullmatch(r"[0-9a-f]{16}", h) for h in items)
    stored = next(
        x
        for x in (await world.rest.request("GET", "/moderation/lists"))["lists"]
        if x["id"] == list_id
    )
    assert stored["items"] == items
    await shot(page, "dashboard-hash-list")
    assert not page_errors(page), page_errors(page)
    await page.context.close()


async def test_a_moderator_decides_an_appeal_and_an_admin_edits_the_terms_in_the_dashboard(
    world: World, browser: Browser
) -> None:
    """Issue 15 item 8: the dashboard's appeals queue (upheld from the card, with the reason
    the user reads) and the terms catalogue (a refused clause named at the field)."""
    alice, bob = await friends(world, "alice", "bob")
    word = unique("zzdashappeal")
    await decisions_word_rule(world, word, alice)
    a = await world.connect(alice)
    sent = await a.send_text(bob, f"{word} indeed")
    verdict = await a.next_event(
        "message.moderated", predicate=lambda e: e.message["id"] == sent["id"]
    )
    decision_id = verdict.data["decision"]["decisionId"]
    async with world.user_rest(await world.token(alice)) as rest:
        appeal = await rest.request(
            "POST", f"/decisions/{decision_id}/appeal", json={"note": "song lyrics, honest"}
        )

    page = await new_page(browser)
    await dashboard_sign_in(page, world.server.url, world.server.api_key, role="admin")
    await page.click(".tabs [data-tab=appeals]")
    card = page.locator(f".appeal-card[data-appeal='{appeal['appealId']}']")
    await expect(card).to_contain_text("song lyrics, honest")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept("lyrics are fine")))
    await card.get_by_role("button", name="Uphold").click()
    await expect(card).to_have_count(0)
    outcome = await a.next_event("moderation.appeal", timeout=10)
    assert outcome.data["outcome"] == "upheld" and outcome.data["reason"] == "lyrics are fine"

    await page.click(".tabs [data-tab=terms]")
    await expect(page.locator("#terms-json")).to_have_value(re.compile(r'"clause"'))
    terms = json.loads(await page.locator("#terms-json").input_value())
    original = json.loads(json.dumps(terms))
    await page.fill(
        "#terms-json", json.dumps([*terms, {"clause": "bad clause!", "explanation": "x"}])
    )
    await page.click("#terms-form button[type=submit]")
    await expect(page.locator("#terms-error")).to_contain_text(f"terms[{len(terms)}]")
    terms[0]["explanation"] = "Be kind: insults are not allowed here."
    await page.fill("#terms-json", json.dumps(terms))
    await page.click("#terms-form button[type=submit]")
    await expect(page.locator("#terms-error")).to_have_text("")
    stored = (await world.rest.request("GET", "/moderation/terms"))["terms"]
    assert stored[0]["explanation"] == "Be kind: insults are not allowed here."
    await world.rest.request("PUT", "/moderation/terms", json={"terms": original})  # shared server
    assert not page_errors(page), page_errors(page)
    await page.context.close()
