"""The demo web client sends an image end to end, in a real headless Chromium (issue 12 item 9).

Alice and Bob each sign in to the real server's demo client (``/``) in their own browser
context, at phone size (390x844). Alice attaches a PNG through the file input, sees the
preview, sends it; Bob's page shows the thumbnail, and the image really loaded (through its
signed link, under the page's CSP).

Playwright drives Debian's Chromium by its executable path (tests/e2e/web.py); without
Chromium this test fails, it never skips. Screenshots go to ``test-screenshots/``.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from playwright.async_api import Browser, Page, expect

from tests.conftest import World
from tests.e2e.web import new_page, page_errors, shot, sign_in


def sample_png(path: Path) -> Path:
    """A 400x300 PNG: blue with an orange square, not flat (so the thumbnail is a real one)."""
    img = Image.new("RGB", (400, 300), (10, 120, 200))
    img.paste((240, 140, 30), (100, 60, 260, 220))
    out = io.BytesIO()
    img.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


async def open_chat(page: Page, uid: str) -> None:
    """Type the peer's uid in full and press Enter (no directory entry needed)."""
    await page.fill("#open-id", uid)
    await page.press("#open-id", "Enter")
    await expect(page.locator("#composer")).to_be_visible()


async def test_web_client_sends_an_image_and_the_receiver_sees_its_thumbnail(
    world: World, browser: Browser, tmp_path: Path
) -> None:
    alice, bob = await world.user("weba"), await world.user("webb")
    picture = sample_png(tmp_path / "sunset.png")
    url = world.server.url

    a = await new_page(browser, phone=True)
    await sign_in(a, url, await world.token(alice))
    await open_chat(a, bob)

    # Attach through the file input: the preview shows the local image, name and size.
    await a.set_input_files("#attach-input", str(picture))
    await a.wait_for_function(
        "() => { const p = document.getElementById('attach-preview');"
        " const img = p.querySelector('img');"
        " return !p.hidden && img && img.src.startsWith('blob:') && img.complete && img.naturalWidth === 400"
        " && p.textContent.includes('sunset.png'); }"
    )
    await a.fill("#composer-text", "the view")
    await shot(a, "web-media-1-preview")
    await a.click("#composer button[type=submit]")

    # The sender's own copy arrives with its server-signed thumbnail.
    await a.wait_for_function(
        "() => { const img = document.querySelector('#messages .msg[data-id] .media-thumb img');"
        " return img && img.src.includes('/media/') && img.complete && img.naturalWidth > 0; }"
    )
    await expect(a.locator("#attach-preview")).to_be_hidden()

    b = await new_page(browser, phone=True)
    await sign_in(b, url, await world.token(bob))
    await open_chat(b, alice)
    # Bob sees the thumbnail (it loaded through his own signed link) and the caption.
    handle = await b.wait_for_function(
        "() => { const img = document.querySelector('#messages .msg[data-id] .media-thumb img');"
        " if (!img || !img.complete || !img.naturalWidth) return null;"
        " const msg = img.closest('.msg');"
        " return {src: img.getAttribute('src'), w: img.naturalWidth, h: img.naturalHeight,"
        "         caption: msg.querySelector('.caption').textContent,"
        "         pending: msg.classList.contains('pending')}; }",
        timeout=30_000,
    )
    thumb = await handle.json_value()
    assert thumb["src"].startswith(url + "/media/m")
    assert "/thumbnail?token=" in thumb["src"]
    assert f".{bob}." in thumb["src"]  # the link was issued to Bob, not to Alice
    assert (thumb["w"], thumb["h"]) == (320, 240)  # fits 320x320, aspect kept
    assert thumb["caption"] == "the view"
    assert not thumb["pending"]
    await shot(b, "web-media-2-receiver")

    # A click opens the full image in the viewer.
    await b.click("#messages .media-thumb")
    handle = await b.wait_for_function(
        "() => { const img = document.querySelector('#viewer[open] #viewer-body img');"
        " return img && img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null; }"
    )
    assert await handle.json_value() == [400, 300]
    await shot(b, "web-media-3-viewer")
    # No script error and no CSP refusal in either page.
    for page in (a, b):
        assert not page_errors(page), page_errors(page)
        await page.context.close()
