"""The demo web client sends an image end to end, in a real headless Chromium (issue 12 item 9).

Alice and Bob each sign in to the real server's demo client (``/``) in their own tab. Alice
attaches a PNG through the file input, sees the preview, sends it; Bob's tab shows the
thumbnail, and the image really loaded (through its signed link, under the page's CSP).

The browser is driven over the Chrome DevTools protocol with the ``websockets`` package (a
dependency already): no browser-automation library. Chromium is required (Debian:
``apt-get install chromium``); without it this test fails, it never skips. ``PARLEY_SCREENSHOTS``
names a folder to keep phone-size (390x844) screenshots of both tabs in.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from PIL import Image

from tests.conftest import World

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-port=0",
]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail(
        "Chromium is required for the browser test (Debian: `sudo apt-get install chromium`)"
    )


class Browser:
    """One CDP connection to the browser; pages are flat sessions on it."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())
        self.console: list[str] = []

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.waiting:
                self.waiting.pop(msg["id"]).set_result(msg)
            elif msg.get("method") in ("Runtime.exceptionThrown", "Log.entryAdded"):
                self.console.append(json.dumps(msg.get("params", {}))[:500])

    async def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> Any:
        msg_id = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[msg_id] = fut
        frame: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            frame["sessionId"] = session
        await self.ws.send(json.dumps(frame))
        answer = await asyncio.wait_for(fut, 30)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    async def page(self, url: str) -> Page:
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self, attached["sessionId"])
        await page.call("Runtime.enable")
        await page.call("Page.enable")
        await page.call("Log.enable")  # CSP violations and failed loads land here
        # Phone size: the layout under test is the narrow one.
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
        )
        await page.call("Page.navigate", {"url": url})
        await page.wait("document.readyState === 'complete'")
        return page


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        return await self.browser.send(method, params, self.session)

    async def js(self, expression: str) -> Any:
        res = await self.call(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
        )
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expression}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                toasts = await self.js("document.getElementById('toasts').textContent")
                raise AssertionError(
                    f"timed out waiting for {expression}\nconsole: {self.browser.console[-10:]}\n"
                    f"toasts: {toasts}"
                )
            await asyncio.sleep(0.1)

    async def sign_in(self, token: str) -> None:
        await self.js(
            f"document.getElementById('jwt').value = {json.dumps(token)};"
            "document.getElementById('jwt-form').requestSubmit()"
        )
        await self.wait("document.getElementById('conn-text').textContent === 'connected'")

    async def open_chat(self, uid: str) -> None:
        await self.js(
            f"document.getElementById('open-id').value = {json.dumps(uid)};"
            "document.getElementById('open-form').requestSubmit()"
        )
        await self.wait("!document.getElementById('composer').hidden")

    async def screenshot(self, name: str) -> None:
        folder = os.environ.get("PARLEY_SCREENSHOTS")
        if not folder:
            return
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def launch(tmp_path: Path) -> AsyncIterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    log = (tmp_path / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Chromium did not start:\n{(tmp_path / 'chromium.log').read_text()}"
                )
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as ws:
            browser = Browser(ws)
            try:
                yield browser
            finally:
                browser.reader.cancel()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def sample_png(path: Path) -> Path:
    """A 400x300 PNG: blue with an orange square, not flat (so the thumbnail is a real one)."""
    img = Image.new("RGB", (400, 300), (10, 120, 200))
    img.paste((240, 140, 30), (100, 60, 260, 220))
    out = io.BytesIO()
    img.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


async def test_web_client_sends_an_image_and_the_receiver_sees_its_thumbnail(
    world: World, tmp_path: Path
) -> None:
    alice, bob = await world.user("weba"), await world.user("webb")
    alice_token, bob_token = await world.token(alice), await world.token(bob)
    picture = sample_png(tmp_path / "sunset.png")

    async with launch(tmp_path) as browser:
        a = await browser.page(world.server.url + "/")
        await a.sign_in(alice_token)
        await a.open_chat(bob)

        # Attach through the file input: the preview shows the local image, name and size.
        doc = await a.call("DOM.getDocument", {"depth": 0})
        node = await a.call(
            "DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#attach-input"}
        )
        await a.call("DOM.setFileInputFiles", {"files": [str(picture)], "nodeId": node["nodeId"]})
        await a.wait(
            "(() => { const p = document.getElementById('attach-preview');"
            " const img = p.querySelector('img');"
            " return !p.hidden && img && img.src.startsWith('blob:') && img.complete && img.naturalWidth === 400"
            " && p.textContent.includes('sunset.png'); })()"
        )
        await a.js("document.getElementById('composer-text').value = 'the view'")
        await a.screenshot("web-media-1-preview")
        await a.js("document.getElementById('composer').requestSubmit()")

        # The sender's own copy arrives with its server-signed thumbnail.
        await a.wait(
            "(() => { const img = document.querySelector('#messages .msg[data-id] .media-thumb img');"
            " return img && img.src.includes('/media/') && img.complete && img.naturalWidth > 0; })()"
        )
        assert await a.wait("document.getElementById('attach-preview').hidden")

        b = await browser.page(world.server.url + "/")
        await b.sign_in(bob_token)
        await b.open_chat(alice)
        # Bob sees the thumbnail (it loaded through his own signed link) and the caption.
        thumb = await b.wait(
            "(() => { const img = document.querySelector('#messages .msg[data-id] .media-thumb img');"
            " if (!img || !img.complete || !img.naturalWidth) return null;"
            " const msg = img.closest('.msg');"
            " return {src: img.getAttribute('src'), w: img.naturalWidth, h: img.naturalHeight,"
            "         caption: msg.querySelector('.caption').textContent,"
            "         pending: msg.classList.contains('pending')}; })()",
            timeout=30,
        )
        assert thumb["src"].startswith(world.server.url + "/media/m")
        assert "/thumbnail?token=" in thumb["src"]
        assert f".{bob}." in thumb["src"]  # the link was issued to Bob, not to Alice
        assert (thumb["w"], thumb["h"]) == (320, 240)  # fits 320x320, aspect kept
        assert thumb["caption"] == "the view"
        assert not thumb["pending"]
        await b.screenshot("web-media-2-receiver")

        # A click opens the full image in the viewer.
        await b.js("document.querySelector('#messages .media-thumb').click()")
        full = await b.wait(
            "(() => { const img = document.querySelector('#viewer[open] #viewer-body img');"
            " return img && img.complete && img.naturalWidth ? [img.naturalWidth, img.naturalHeight] : null; })()"
        )
        assert full == [400, 300]
        await b.screenshot("web-media-3-viewer")
        problems = [
            line
            for line in browser.console
            if "exceptionDetails" in line or "Content Security" in line
        ]
        assert not problems, problems
