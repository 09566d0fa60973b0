"""Issue 15's web findings: a private SQLite file, ``Secure`` cookies from the configured
public URL, CSP and ``nosniff`` on pages (and ``X-Frame-Options`` on the re-rendered login
page), and consent sessions that can be ended."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import httpx

from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import partner
from tests.support.partner import World, oauth_client


async def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        pass
    _private(tmp_path)


def _private(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file() and ".db" in p.name]
    assert files, list(root.rglob("*"))
    for f in files:
        assert stat.S_IMODE(os.stat(f).st_mode) & 0o077 == 0, (f, oct(os.stat(f).st_mode))


async def _sign_in_page(world: World) -> httpx.Response:
    oauth = oauth_client(world)
    url, _ = oauth.create_authorization_url("http://test/oauth/authorize", code_verifier="v" * 48)
    return await world.client.get(url.removeprefix("http://test"))


async def test_pages_carry_csp_nosniff_and_frame_denial(world: World) -> None:
    page = await _sign_in_page(world)
    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    nxt = re.search(r'name="next" value="([^"]+)"', page.text)
    assert csrf and nxt
    wrong = await world.client.post(
        "/oauth/login",
        data={
            "csrf": csrf.group(1),
            "next": nxt.group(1).replace("&amp;", "&"),
            "username": "alice",
            "password": "not her password",
        },
    )
    assert wrong.status_code == 401
    assert wrong.headers["x-frame-options"] == "DENY"  # before: missing on this page
    assert "default-src 'none'" in wrong.headers["content-security-policy"]
    api = await world.client.get("/v1/scopes")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in api.headers  # JSON: nothing to render


async def test_cookies_are_secure_when_the_public_url_is_https(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path, public_url="https://clearpost.example"))
    async with app.router.lifespan_context(app):
        await app.state.services.partners.register(partner.AGREEMENT)
        transport = httpx.ASGITransport(app=app)  # the proxy's plain-http hop
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            world = World(client, "streamco", "", transport)
            page = await _sign_in_page(world)
            assert page.status_code == 200, page.text
            cookie = page.headers["set-cookie"]
            assert "cp_pre=" in cookie and "secure" in cookie.lower(), cookie


async def test_a_consent_session_can_be_ended(world: World) -> None:
    async with oauth_client(world) as oauth:
        await partner.consent(world, oauth)  # Alice is signed in on the consent pages
        url, _ = oauth.create_authorization_url(
            "http://test/oauth/authorize", code_verifier="w" * 48
        )
        page = await world.client.get(url.removeprefix("http://test"))
        assert 'id="sign-out"' in page.text
        csrf = re.findall(r'name="csrf" value="([^"]+)"', page.text)[-1]
        refused = await world.client.post("/oauth/logout", data={"csrf": "forged"})
        assert refused.status_code == 403
        done = await world.client.post("/oauth/logout", data={"csrf": csrf})
        assert done.status_code == 200 and "signed out" in done.text.lower()
        again = await world.client.get(url.removeprefix("http://test"))
        assert 'action="/oauth/login"' in again.text  # asked to sign in again
