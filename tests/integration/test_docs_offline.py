"""``/docs`` and ``/redoc`` load everything from this server, and render with no network.

FastAPI's default pages pulled Swagger UI, ReDoc, a favicon and Google Fonts from CDNs, so
they were blank offline and told third parties who read the docs. The browser test opens
both pages in Chromium with every request to another origin blocked (and recorded).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearpost.server.http.docs import ASSET_FILES, ASSETS
from tests.e2e.test_partner_flow import _need_browser
from tests.support.chromium import CHROMIUM_ARGS, chromium
from tests.support.server import ServerProcess, start_server

_URL_ATTR = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def _referenced(html: str) -> list[str]:
    return _URL_ATTR.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_this_server(
    app_client: httpx.AsyncClient, page: str
) -> None:
    r = await app_client.get(page)
    assert r.status_code == 200
    assert "default-src 'self'" in r.headers["content-security-policy"]
    urls = _referenced(r.text)
    assert urls, "the page loads no assets at all?"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url}"
        asset = await app_client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    # no absolute URL anywhere in the page (scripts, styles, fonts, validator badge)
    assert not re.search(r"https?://", r.text), r.text


async def test_every_asset_is_served_with_its_type(app_client: httpx.AsyncClient) -> None:
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for name in ASSET_FILES:
        r = await app_client.get(f"{ASSETS}/{name}")
        assert r.status_code == 200, name
        assert kinds[Path(name).suffix] in r.headers["content-type"], name


@pytest.fixture
def docs_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path / "srv", f"sqlite+aiosqlite:///{tmp_path / 'srv' / 'cp.db'}")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.slow
async def test_docs_render_in_a_browser_with_other_origins_blocked(
    docs_server: ServerProcess,
) -> None:
    _need_browser()
    assert "--disable-background-networking" in CHROMIUM_ARGS
    foreign: list[str] = []

    async def only_this_origin(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(docs_server.url + "/"):
            await route.continue_()  # type: ignore[attr-defined]
        else:
            foreign.append(url)
            await route.abort()  # type: ignore[attr-defined]

    async with chromium() as browser:
        page = await browser.new_page()
        await page.route("**/*", only_this_origin)
        await page.goto(docs_server.url + "/docs")
        # Swagger UI rendered the operations, from /openapi.json
        await page.wait_for_selector(".opblock", timeout=30_000)
        assert await page.locator(".opblock").count() > 30
        await page.goto(docs_server.url + "/redoc")
        await page.wait_for_selector("text=Send an encrypted message", timeout=30_000)
        assert await page.locator("h2").count() > 10
        await page.close()
    assert foreign == [], f"the docs pages tried to reach other hosts: {foreign}"
