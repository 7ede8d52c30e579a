"""A small Chrome DevTools protocol driver for the dashboard's browser tests
(tests/e2e/test_web_dashboard.py, test_review_card.py): Debian's Chromium, driven with the
``websockets`` package. The chat client's browser tests use Playwright (tests/e2e/web.py);
these two files were written against this driver and keep it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
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
