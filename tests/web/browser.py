"""Driving the web app in Debian's Chromium with Playwright, for the web tests and the bench.

Needs ``/usr/bin/chromium``, the ``playwright`` Python package (dev extra; no downloaded
browser) and the built app (``make install`` with Node 20+). Without them a test is
skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from clearpost.client import Client
from clearpost.server.http.routes import webapp
from tests.support.chromium import CHROMIUM
from tests.unit.client import partners

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CLEARPOST_SCREENSHOTS") or ROOT / "test-artifacts" / "web")
"""Screenshots of every page (default gitignored ``test-artifacts/web``): look at them."""
PASSWORD = partners.PASSWORD


def need_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright Python package (pip install -e '.[dev]')")
    if not webapp.built():
        missing.append("the built web app (Node 20+, then make install)")
    if missing:
        reason = "the web app tests need " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + "; under CI=true they must run")
        pytest.skip(reason)


@dataclass
class Tab:
    """One browser profile (a context: its own IndexedDB, so its own device) and its page."""

    context: Any
    page: Any
    base: str
    name: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign_requests(self) -> list[str]:
        """Every request this tab made to any other origin than the server."""
        host = urlsplit(self.base).netloc
        return [u for u in self.requests if urlsplit(u).netloc != host]

    async def shot(self, name: str) -> None:
        await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def open_tab(browser: Any, base: str, name: str, width: int = 1024) -> Tab:
    context = await browser.new_context(viewport={"width": width, "height": 800})
    page = await context.new_page()
    tab = Tab(context, page, base, name)
    page.on("request", lambda r: tab.requests.append(r.url))
    page.on("websocket", lambda ws: tab.requests.append(ws.url))
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on(
        "console",
        lambda m: tab.errors.append(m.text) if m.type == "error" else None,
    )
    # the crypto worker's own requests are seen by the context
    context.on("request", lambda r: tab.requests.append(r.url))
    await page.goto(base + "/")
    await page.wait_for_selector("body[data-ready]")
    return tab


async def register(tab: Tab, username: str, *, keyboard: bool = False) -> None:
    page = tab.page
    await page.goto(tab.base + "/#/register")
    await page.wait_for_selector("#username")
    if keyboard:  # by keyboard only: the username field has focus, Tab moves on, Enter sends
        await page.keyboard.type(username)
        await page.keyboard.press("Tab")
        await page.keyboard.type(PASSWORD)
        await page.keyboard.press("Enter")
    else:
        await page.fill("#username", username)
        await page.fill("#password", PASSWORD)
        await page.click("form button[type=submit]")
    await page.wait_for_selector("#inbox")


async def sign_in(tab: Tab, username: str) -> None:
    page = tab.page
    await page.goto(tab.base + "/#/signin")
    await page.wait_for_selector("#username")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_selector("#inbox")


async def send(tab: Tab, text: str) -> None:
    await tab.page.fill("#compose", text)
    await tab.page.press("#compose", "Enter")


async def open_conversation(tab: Tab, name: str) -> None:
    await tab.page.goto(tab.base + "/#/")
    await tab.page.click(f"#inbox a:has(.name:text-is('{name}'))")
    await tab.page.wait_for_selector("#compose")


async def wait_text(tab: Tab, text: str, timeout: float = 20_000) -> None:
    """Wait until a decrypted message with this text is shown."""
    await tab.page.wait_for_selector(
        f"#messages li[data-state=ok] .text:text-is({text!r})", timeout=timeout
    )


async def sdk_user(http: httpx.AsyncClient, name: str, tmp_path: Path) -> Client:
    """A person on the Python SDK beside the browsers (password ``PASSWORD``): the SDK
    tests' own registration (``tests/unit/client/partners.client``)."""
    return await partners.client(http, tmp_path, name)
