"""The browser's own storage (``web/src/store.ts``) in Debian's Chromium: once a device is
wiped, nothing it still had under way can bring its database back.

A device removed from elsewhere learns it from its sync, while other work of the crypto
worker is still running (a sync's cursor being stored, a check of the key directory). The
worker wipes the device; a write that lands after that must fail, not open
``clearpost-app`` again and leave a cursor (and the directory checks' state) behind on a
signed-out browser. The module is bundled with the project's esbuild and served on a
localhost origin through Playwright's routing (no server: IndexedDB is the browser's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.chromium import chromium
from tests.web.browser import need_browser
from tests.web.test_verify_vectors import WEB, _need_node, esbuild

ORIGIN = "http://localhost:9"
NAMES = "indexedDB.databases().then(d => d.map(x => x.name))"


async def _store_page(browser: Any, script: bytes) -> Any:
    page = await browser.new_page()

    async def serve(route: Any) -> None:
        if route.request.url.endswith(".js"):
            await route.fulfill(body=script, content_type="text/javascript")
        else:
            html = '<!doctype html><script type="module" src="/store.js"></script>'
            await route.fulfill(body=html, content_type="text/html")

    await page.route(ORIGIN + "/**", serve)
    await page.goto(ORIGIN + "/")
    await page.wait_for_function("window.store !== undefined")
    return page


@pytest.fixture
def script(tmp_path: Path) -> bytes:
    """``store.ts`` bundled for the page."""
    need_browser()
    _need_node()
    page = WEB / "test" / "store" / "page.ts"
    return esbuild(page, tmp_path / "store.js", platform="browser").read_bytes()


async def test_a_write_under_way_when_the_device_is_wiped_does_not_bring_its_storage_back(
    script: bytes,
) -> None:
    async with chromium() as browser:
        page = await _store_page(browser, script)
        await page.evaluate("store.put('cursor', 'c1')")
        assert "clearpost-app" in await page.evaluate(NAMES)

        # the wipe and a sync storing its cursor, under way together
        late = await page.evaluate(
            """async () => {
                const wiping = store.wipe(null);
                const late = store.put('cursor', 'c2').then(() => 'stored', (e) => String(e));
                await wiping;
                return [await late, await store.get('cursor').catch((e) => String(e))];
            }"""
        )
        assert late == ["Error: this device was signed out: its storage is deleted"] * 2
        assert "clearpost-app" not in await page.evaluate(NAMES)

        # a login on this browser starts afresh and stores again
        await page.evaluate("store.reset().then(() => store.put('cursor', 'c3'))")
        assert await page.evaluate("store.get('cursor')") == "c3"
