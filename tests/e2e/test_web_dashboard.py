"""The moderation dashboard in a real headless Chromium (issue 17): operators sign in with
their own accounts (the cookie is HttpOnly: the page never sees it), the list editor saves
a new and an edited keyword list with its allow-list, and the queue is live: a message held
on the chat side appears without a reload, a decision there reaches the receiver's chat page,
and a claim by one moderator stops another.

Driven over the Chrome DevTools protocol by ``tests/e2e/cdp.py`` (its ``launch`` and
``Page``); each operator gets a browser context of their own (their own cookie jar).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import World, unique
from tests.e2e.cdp import Browser, Page, launch
from tests.e2e.test_moderation_flow import word_rule
from tests.e2e.test_operators import PASSWORD, add_operator


async def open_page(browser: Browser, url: str, *, own_cookies: bool = True) -> Page:
    """A page at ``url``, in a browser context of its own unless ``own_cookies`` is False."""
    params: dict[str, Any] = {"url": "about:blank"}
    if own_cookies:
        params["browserContextId"] = (await browser.send("Target.createBrowserContext"))[
            "browserContextId"
        ]
    target = await browser.send("Target.createTarget", params)
    attached = await browser.send(
        "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
    )
    page = Page(browser, attached["sessionId"])
    for method in ("Runtime.enable", "Page.enable", "Log.enable"):
        await page.call(method)
    await page.call(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
    )
    await page.call("Page.navigate", {"url": url})
    await page.wait("document.readyState === 'complete'")
    return page


async def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    await page.wait("!document.getElementById('login-view').hidden")
    await page.js(
        f"document.getElementById('login-name').value = {json.dumps(name)};"
        f"document.getElementById('login-password').value = {json.dumps(password)};"
        "document.getElementById('login-form').requestSubmit()"
    )
    await page.wait("!document.getElementById('dash-view').hidden")
    # The session cookie is HttpOnly: the page's script cannot read it.
    assert "parley_staff" not in await page.js("document.cookie")


async def a_chat_send(page: Page, text: str) -> None:
    """Send ``text`` from a signed-in chat page with a conversation open."""
    await page.js(
        f"document.getElementById('composer-text').value = {json.dumps(text)};"
        "document.getElementById('composer').requestSubmit()"
    )


def card(message_id: int) -> str:
    return f"document.querySelector('#queue-items [data-message-id=\"{message_id}\"]')"


async def test_list_editor_saves_a_new_and_an_edited_list(world: World, tmp_path: Path) -> None:
    server = world.server
    admin = await add_operator(server, "admin")
    list_name = unique("Place words")
    async with launch(tmp_path) as browser:
        page = await open_page(browser, server.url + "/dashboard")
        await sign_in(page, admin)
        await page.js("document.querySelector('.tabs [data-tab=lists]').click()")
        await page.js("document.getElementById('lists-new').click()")
        await page.wait("!document.getElementById('list-editor').hidden")
        await page.js(
            f"document.getElementById('list-name').value = {json.dumps(list_name)};"
            "document.getElementById('list-kind').value = 'keywords';"
            "document.getElementById('list-items').value = 'scunthorpe\\nbadword\\n\\nbadword';"
            "document.getElementById('list-allow').value = 'Scunthorpe United';"
            "document.getElementById('list-editor').requestSubmit()"
        )
        await page.wait("document.getElementById('list-editor').hidden")
        row = await page.wait(
            "[...document.querySelectorAll('#lists-body tr')].map(r => r.textContent)"
            f".find(t => t.includes({json.dumps(list_name)}))"
        )
        assert "1: Scunthorpe United" in row  # the allow-list's words, not "yes"
        lists = (await world.rest.request("GET", "/moderation/lists"))["lists"]
        saved = next(x for x in lists if x["name"] == list_name)
        assert saved["items"] == ["scunthorpe", "badword"]
        assert saved["allow"] == ["Scunthorpe United"]
        assert saved["kind"] == "keywords"

        # Edit it: one more word, the allow-list emptied.
        await page.js(
            "[...document.querySelectorAll('#lists-body tr')]"
            f".find(r => r.textContent.includes({json.dumps(list_name)}))"
            ".querySelector('button').click()"
        )
        await page.wait("document.getElementById('list-items').value === 'scunthorpe\\nbadword'")
        await page.js(
            "document.getElementById('list-items').value += '\\nworseword';"
            "document.getElementById('list-allow').value = '';"
            "document.getElementById('list-editor').requestSubmit()"
        )
        await page.wait("document.getElementById('list-editor').hidden")
        edited = await world.rest.request("GET", f"/moderation/lists/{saved['id']}")
        assert edited["items"] == ["scunthorpe", "badword", "worseword"]
        assert edited["allow"] == []

        # A sentences list (for similarity conditions) saves through the same form.
        await page.js("document.getElementById('lists-new').click()")
        await page.js(
            "document.getElementById('list-name').value = 'scam lines';"
            "document.getElementById('list-kind').value = 'sentences';"
            "document.getElementById('list-items').value ="
            " 'send me your bank password\\nwire the money today';"
            "document.getElementById('list-editor').requestSubmit()"
        )
        await page.wait("document.getElementById('list-editor').hidden")
        sentences = next(
            x
            for x in (await world.rest.request("GET", "/moderation/lists"))["lists"]
            if x["name"] == "scam lines" and x["kind"] == "sentences"
        )
        assert sentences["items"] == ["send me your bank password", "wire the money today"]

        # A bad pattern is refused, the field named next to the form, and nothing is lost.
        await page.js("document.getElementById('lists-new').click()")
        await page.js(
            "document.getElementById('list-name').value = 'broken patterns';"
            "document.getElementById('list-kind').value = 'patterns';"
            "document.getElementById('list-items').value = 'ok\\n(unclosed';"
            "document.getElementById('list-editor').requestSubmit()"
        )
        error = await page.wait("document.getElementById('list-error').textContent")
        assert error.startswith("items[1]:")
        assert not await page.js("document.getElementById('list-editor').hidden")
        assert "(unclosed" in await page.js("document.getElementById('list-items').value")

        entries = (await world.rest.audit(since=0))["entries"]
        mine = [e["action"] for e in entries if e["target"] == saved["id"]]
        assert mine == ["list.create", "list.update"]
        assert all(e["actor"] == f"operator:{admin}" for e in entries if e["target"] == saved["id"])
        problems = [line for line in browser.console if "exceptionDetails" in line]
        assert not problems, problems


async def test_live_queue_held_messages_appear_and_decisions_reach_the_chat(
    world: World, tmp_path: Path
) -> None:
    server = world.server
    first, second = await add_operator(server, "moderator"), await add_operator(server, "moderator")
    word = unique("livehold")
    await word_rule(world, word, ["review"])
    alice, bob = await world.user("livea"), await world.user("liveb")
    async with launch(tmp_path) as browser:
        m1 = await open_page(browser, server.url + "/dashboard")
        await sign_in(m1, first)
        m2 = await open_page(browser, server.url + "/dashboard")
        await sign_in(m2, second)
        for page in (m1, m2):
            await page.wait("document.getElementById('live-state').textContent === 'live'")

        chat_bob = await open_page(browser, server.url + "/", own_cookies=False)
        await chat_bob.sign_in(await world.token(bob))
        await chat_bob.open_chat(alice)
        # Alice writes from her chat page; the rule holds the message.
        chat_alice = await open_page(browser, server.url + "/", own_cookies=False)
        await chat_alice.sign_in(await world.token(alice))
        await chat_alice.open_chat(bob)
        await chat_alice.js(
            f"document.getElementById('composer-text').value = 'about {word} tonight';"
            "document.getElementById('composer').requestSubmit()"
        )
        message_id = int(
            await m1.wait(
                "[...document.querySelectorAll('#queue-items .card')]"
                f".find(c => c.textContent.includes('about {word} tonight'))?.dataset.messageId"
            )
        )
        # Both dashboards show it without a reload, and the live counters count it.
        for page in (m1, m2):
            await page.wait(f"{card(message_id)} !== null")
        await m1.wait(
            "Number(document.querySelector('[data-counter=pending] .counter-value')"
            "?.textContent) >= 1"
        )
        assert await m1.js("document.querySelectorAll('#live-counters svg.spark').length") == 6

        # The first moderator claims it: the second sees who, and cannot decide it.
        await m1.js(f"{card(message_id)}.querySelector('[data-role=claim]').click()")
        await m2.wait(
            f"{card(message_id)}.querySelector('.claim').textContent === 'claimed by operator:{first}'"
        )
        assert await m2.js(f"{card(message_id)}.querySelector('button.ok').disabled")
        refused = await m2.js(
            "fetch('/api/v1/operators/me').then(r => r.json()).then(me =>"
            f" fetch('/api/v1/moderation/messages/{message_id}/approve', {{method: 'POST',"
            " headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrfToken},"
            " body: '{}'}).then(r => r.status))"
        )
        assert refused == 409

        # The first approves from the card: the message reaches Bob's chat page, and the
        # card leaves the other dashboard.
        await m1.js(f"{card(message_id)}.querySelector('button.ok').click()")
        await chat_bob.wait(
            f"document.querySelector('#messages .msg[data-id=\"{message_id}\"]') !== null"
        )
        await m2.wait(f"{card(message_id)} === null")
        await m1.wait(f"{card(message_id)} === null")

        # A message the default profanity rule blocks shows in "blocked by rule".
        await a_chat_send(chat_alice, "you are a f.u.c.k.i.n.g idiot")
        blocked = await m1.wait(
            "(() => { const t = document.querySelector('[data-counter=by-rule] .by-rule-list')"
            "?.textContent; return t && t !== '—' ? t : null; })()"
        )
        assert ": 1" in blocked

    async with httpx.AsyncClient(base_url=server.url + "/api/v1") as http:
        entries = (
            await http.get("/audit", params={"since": 0}, headers={"x-api-key": server.api_key})
        ).json()["entries"]
    decided = [e for e in entries if e["target"] == str(message_id)]
    assert decided[-1]["action"] == "message.approved"
    assert decided[-1]["actor"] == f"operator:{first}"
    problems = [line for line in browser.console if "exceptionDetails" in line]
    assert not problems, problems


async def test_rule_form_editor_field_errors_revision_diffs_and_dry_run(
    world: World, tmp_path: Path
) -> None:
    server = world.server
    admin = await add_operator(server, "admin")
    word = unique("dryword")
    list_id = unique("rl")
    await world.rest.create_list(
        {"id": list_id, "name": "dry words", "kind": "keywords", "items": [word]}
    )
    alice, bob = await world.user("drya"), await world.user("dryb")
    a = await world.connect(alice)
    sent = await a.send_text(bob, f"an old {word} message")
    rule_id = unique("form-rule")
    async with launch(tmp_path) as browser:
        page = await open_page(browser, server.url + "/dashboard")
        await sign_in(page, admin)
        await page.js("document.querySelector('.tabs [data-tab=rules]').click()")
        await page.wait("document.querySelectorAll('#rules-body tr').length > 0")
        await page.js("document.getElementById('rules-new').click()")
        await page.wait("!document.getElementById('rule-form').hidden")
        form = "document.getElementById('rule-form')"
        at = f'(p) => {form}.querySelector(`[data-path="${{p}}"]`)'
        await page.js(
            f"(() => {{ const at = {at};"
            f" at('id').value = {json.dumps(rule_id)}; at('name').value = 'Form rule';"
            " at('conditions[0].listId').value = " + json.dumps(list_id) + ";"
            " at('conditions[0].threshold').value = '2';"
            " for (const box of at('actions').querySelectorAll('input'))"
            "   box.checked = box.value === 'review';"
            " })()"
        )
        await page.js("document.getElementById('rule-save').click()")
        # The server's error is shown at the field it names.
        error = await page.wait(
            f"{form}.querySelector('[data-error-for=\"conditions[0].threshold\"]').textContent"
        )
        assert "between 0 and 1" in error
        assert await page.js(
            f"{form}.querySelector('[data-path=\"conditions[0].threshold\"]')"
            ".classList.contains('invalid')"
        )
        # Dry run of the draft: the stored message it would have held, as a table.
        await page.js(f"({at})('conditions[0].threshold').value = ''")
        await page.js("document.getElementById('rule-dry-run').click()")
        row = await page.wait(
            "[...document.querySelectorAll('#rule-dry-body tr')].map(r => r.textContent)"
            f".find(t => t.includes('#{sent['id']}'))"
        )
        assert "review" in row and word in row
        await page.js("document.getElementById('rule-save').click()")
        await page.wait("document.getElementById('rule-editor').hidden")
        stored = await world.rest.request("GET", f"/moderation/rules/{rule_id}")
        assert stored["actions"] == ["review"] and stored["conditions"][0]["listId"] == list_id
        assert stored["enabled"] is False  # the template's default, kept by the form

        # The JSON view is kept: it shows what the form holds, and edits there save too.
        await page.js(
            "[...document.querySelectorAll('#rules-body tr')]"
            f".find(r => r.textContent.includes({json.dumps(rule_id)}))"
            ".querySelector('button').click()"
        )
        await page.wait("!document.getElementById('rule-editor').hidden")
        await page.js(f"({at})('name').value = 'Form rule, renamed'")
        await page.js("document.querySelector('input[name=rule-view][value=json]').click()")
        shown = json.loads(await page.wait("document.getElementById('rule-json').value"))
        assert shown["name"] == "Form rule, renamed"
        await page.js("document.getElementById('rule-save').click()")
        await page.wait("document.getElementById('rule-editor').hidden")
        assert (await world.rest.request("GET", f"/moderation/rules/{rule_id}"))["revision"] == 2

        # Revisions with what changed.
        await page.js(
            "[...document.querySelectorAll('#rules-body tr')]"
            f".find(r => r.textContent.includes({json.dumps(rule_id)}))"
            ".querySelectorAll('button')[1].click()"
        )
        diff = await page.wait(
            "[...document.querySelectorAll('#revisions-body pre.diff')].map(p => p.textContent)[0]"
        )
        assert diff.splitlines() == [
            '-   "name": "Form rule",',
            '+   "name": "Form rule, renamed",',
        ]
        problems = [line for line in browser.console if "exceptionDetails" in line]
        assert not problems, problems
