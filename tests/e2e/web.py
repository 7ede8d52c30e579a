"""Playwright helpers for the browser tests: Debian's Chromium, screenshots, and the demo
client's and dashboard's controls in one place (tests/e2e/test_web_client.py).

Playwright drives the system Chromium through its executable path (``PARLEY_CHROMIUM``, else
``chromium`` on PATH); Playwright's own browser download is never used. Without Chromium the
tests fail, they never skip.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

#: The password the dashboard tests give the operators they make.
OPERATOR_PASSWORD = "correct horse battery"

ROOT = Path(__file__).resolve().parents[2]
#: Where screenshots go for review (git-ignored); PARLEY_SCREENSHOTS overrides it.
SHOTS = Path(os.environ.get("PARLEY_SCREENSHOTS") or ROOT / "test-screenshots")

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=20_000)


def chromium_path() -> str:
    for name in (os.environ.get("PARLEY_CHROMIUM"), "chromium", "chromium-browser"):
        if name and (path := shutil.which(name)):
            return path
    pytest.fail("Chromium is required for the browser tests (Debian: `apt-get install chromium`)")


async def new_page(browser: Browser, *, phone: bool = False) -> Page:
    """A page in a context of its own: its own storage, like another device."""
    context: BrowserContext = await browser.new_context(
        viewport=PHONE if phone else DESKTOP,
        is_mobile=phone,
        has_touch=phone,
        device_scale_factor=2 if phone else 1,
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    page.errors = errors  # type: ignore[attr-defined]
    return page


def page_errors(page: Page) -> list[str]:
    return list(page.errors)  # type: ignore[attr-defined]


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"))


# ------------------------------------------------------------------ the demo chat client


async def sign_in(page: Page, base_url: str, token: str) -> None:
    await page.goto(base_url + "/")
    await page.fill("#jwt", token)
    await page.click("#jwt-form button[type=submit]")
    await expect_connected(page)


async def expect_connected(page: Page) -> None:
    await expect(page.locator("#conn-text")).to_have_text("connected")


def conversation_id(a: str, b: str) -> str:
    return "_user_".join(sorted((a, b)))


def inbox_item(page: Page, cid: str) -> Locator:
    return page.locator(f'#conv-list li[data-cid="{cid}"]')


async def start_chat_by_search(page: Page, query: str, uid: str) -> None:
    """Type in the search box and pick ``uid`` from the directory's answers."""
    await page.fill("#open-id", query)
    await page.click(f'#search-results .search-result[data-uid="{uid}"]')
    await expect(page.locator("#composer")).to_be_visible()


async def open_chat(page: Page, cid: str) -> None:
    await page.click(f'#conv-list li[data-cid="{cid}"] button')
    await expect(page.locator("#composer")).to_be_visible()


async def send(page: Page, text: str) -> None:
    await page.fill("#composer-text", text)
    await page.press("#composer-text", "Enter")


def bubbles(page: Page, text: str) -> Locator:
    """Stored messages (they have a server id) whose body is exactly ``text``."""
    return page.locator("#messages .msg[data-id]").filter(
        has=page.locator(".body", has_text=re.compile(f"^{re.escape(text)}$"))
    )


def any_bubble(page: Page, text: str) -> Locator:
    """Stored or still local (sending) messages whose body is exactly ``text``."""
    return page.locator("#messages .msg").filter(
        has=page.locator(".body", has_text=re.compile(f"^{re.escape(text)}$"))
    )


# ------------------------------------------------------------------ the moderator dashboard


async def dashboard_sign_in(
    page: Page, base_url: str, api_key: str, role: str = "moderator"
) -> str:
    """Sign in to /dashboard as a new operator with ``role`` (made through the API key); the
    operator's name. The one place that knows how the dashboard signs in."""
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=base_url + "/api/v1") as http:
        made = await http.post(
            "/operators",
            json={"name": name, "role": role, "password": OPERATOR_PASSWORD},
            headers={"X-API-Key": api_key},
        )
        assert made.status_code == 201, made.text
    await page.goto(base_url + "/dashboard")
    await page.fill("#login-name", name)
    await page.fill("#login-password", OPERATOR_PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#dash-view")).to_be_visible()
    return name
