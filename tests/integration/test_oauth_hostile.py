"""Bad and hostile partner inputs: each a clear 4xx and nothing changed."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from clearpost.core.clock import FakeClock
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import api, partner
from tests.support.partner import REDIRECT
from tests.support.snapshot import snapshot

OTHER = (
    partner.AGREEMENT.replace('id = "streamco"', 'id = "othertv"')
    .replace("StreamCo", "OtherTV")
    .replace("8765/callback", "8766/callback")
    .replace("streamco.example", "othertv.example")
)


class Env:
    def __init__(
        self, client: httpx.AsyncClient, clock: FakeClock, secrets: dict[str, str]
    ) -> None:
        self.client, self.clock, self.secrets = client, clock, secrets

    @property
    def db(self) -> object:
        return self.client.app.state.services.db  # type: ignore[attr-defined]

    def basic(self, partner_id: str) -> dict[str, str]:
        raw = f"{partner_id}:{self.secrets[partner_id]}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def authorize_url(
        self, partner_id: str = "streamco", redirect: str = REDIRECT, **extra: str
    ) -> tuple[str, str]:
        verifier = generate_token(48)
        params = {
            "response_type": "code",
            "client_id": partner_id,
            "redirect_uri": redirect,
            "scope": "profile:basic share:intent",
            "state": "s1",
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
            **extra,
        }
        return "/oauth/authorize?" + httpx.QueryParams(params).__str__(), verifier

    async def code(self, partner_id: str = "streamco", redirect: str = REDIRECT) -> tuple[str, str]:
        url, verifier = self.authorize_url(partner_id, redirect)
        done = await partner.approve(self.client, url, "alice", api.PASSWORD)
        return partner.code_from(done)["code"][0], verifier

    async def tokens(
        self, partner_id: str = "streamco", redirect: str = REDIRECT
    ) -> dict[str, str]:
        code, verifier = await self.code(partner_id, redirect)
        r = await self.client.post(
            "/oauth/token",
            headers=self.basic(partner_id),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": redirect,
            },
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock(start_ms=1_800_000_000_000)
    app = create_app(fast_settings(tmp_path), clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            svc = app.state.services
            secrets = {}
            for text in (partner.AGREEMENT, OTHER):
                version, secret = await svc.partners.register(text)
                secrets[version.partner_id] = secret
            await api.user(client, "alice")
            yield Env(client, clock, secrets)


async def settled(env: Env) -> dict[str, object]:
    """A snapshot once the log sequencer has integrated everything appended so far (twice:
    the second step publishes the key-directory epoch that counts what the first signed)."""
    for _ in range(2):
        await env.client.app.state.services.log.integrate_once()  # type: ignore[attr-defined]
    return await snapshot(env.db)  # type: ignore[arg-type, no-any-return]


async def _unchanged(env: Env, before: object) -> None:
    assert await settled(env) == before


async def test_wrong_or_extra_redirect_uri_is_never_followed(env: Env) -> None:
    for redirect in (
        "http://127.0.0.1:8765/callback/",
        "http://127.0.0.1:8765/callback?x=1",
        "http://127.0.0.1:8766/callback",
        "https://evil.example/callback",
    ):
        url, _ = env.authorize_url(redirect=redirect)
        r = await env.client.get(url)
        assert r.status_code == 400 and "location" not in r.headers, redirect
    url, _ = env.authorize_url()
    r = await env.client.get(url + "&redirect_uri=" + REDIRECT)  # a second redirect_uri
    assert r.status_code in (302, 400)
    if r.status_code == 302:
        assert "error=invalid_request" in r.headers["location"]


async def test_wrong_verifier_and_code_reuse_and_code_for_another_partner(env: Env) -> None:
    code, verifier = await env.code()
    before = await settled(env)
    r = await env.client.post(
        "/oauth/token",
        headers=env.basic("streamco"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": "x" * 50,
            "redirect_uri": REDIRECT,
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert r.json()["code"] == "oauth_invalid_grant" and r.json()["status"] == 400
    r = await env.client.post(
        "/oauth/token",
        headers=env.basic("othertv"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "http://127.0.0.1:8766/callback",
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    r = await env.client.post(
        "/oauth/token",
        headers=env.basic("streamco"),
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier},
    )
    assert r.status_code == 400  # redirect_uri must be repeated exactly
    await _unchanged(env, before)


async def test_expired_code_and_expired_access_token(env: Env) -> None:
    code, verifier = await env.code()
    env.clock.advance(61)
    r = await env.client.post(
        "/oauth/token",
        headers=env.basic("streamco"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
        },
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    tokens = await env.tokens()
    env.clock.advance(601)
    r = await env.client.get(
        "/v1/partner/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_partner_tokens_do_not_cross_partners(env: Env) -> None:
    tokens = await env.tokens()
    auth = env.basic("othertv")
    r = await env.client.post(
        "/oauth/introspect", data={"token": tokens["access_token"]}, headers=auth
    )
    assert r.status_code == 200 and r.json() == {"active": False}
    r = await env.client.post(
        "/oauth/token",
        headers=auth,
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    before = await settled(env)
    r = await env.client.post("/oauth/revoke", data={"token": tokens["access_token"]}, headers=auth)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 7009 §2.1: refused
    await _unchanged(env, before)
    r = await env.client.get(
        "/v1/partner/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert r.status_code == 200


async def test_share_intent_inputs(env: Env) -> None:
    tokens = await env.tokens()
    h = {"Authorization": f"Bearer {tokens['access_token']}"}
    before = await settled(env)
    cases = [
        ({"title": "t", "url": "https://evil.example/x"}, 422, "link_domain_not_allowed"),
        (
            {"title": "t", "url": "https://streamco.example.evil.com/x"},
            422,
            "link_domain_not_allowed",
        ),
        ({"title": "t", "url": "javascript:alert(1)"}, 422, "invalid_url"),
        ({"title": "t", "url": "https://user:pw@streamco.example/x"}, 422, "invalid_url"),
        ({"title": "t" * 201, "url": "https://streamco.example/x"}, 422, "invalid_request"),
        ({"title": "t", "url": "https://streamco.example/" + "x" * 2000}, 422, "invalid_request"),
        (
            {
                "title": "t",
                "url": "https://streamco.example/x",
                "image_url": "https://tracker.example/p.gif",
            },
            422,
            "link_domain_not_allowed",
        ),
        (
            {"title": "t", "url": "https://streamco.example/x", "recipients": ["@bob"]},
            422,
            "invalid_request",
        ),
        ({"title": "   ", "url": "https://streamco.example/x"}, 422, "invalid_input"),
    ]
    for body, status, code in cases:
        r = await env.client.post("/v1/partner/share-intents", json=body, headers=h)
        assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
    await _unchanged(env, before)


async def test_expired_intent_cannot_be_completed(env: Env) -> None:
    tokens = await env.tokens()
    alice = await api.login(env.client, "alice", keys=False)
    r = await env.client.post(
        "/v1/partner/share-intents",
        json={"title": "t", "url": "https://streamco.example/x"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    intent = r.json()["intent_id"]
    env.clock.advance(24 * 3600 + 1)
    r = await env.client.post(
        f"/v1/me/share-intents/{intent}/complete", json={"recipients": 2}, headers=alice.headers
    )
    assert r.status_code == 409 and r.json()["code"] == "intent_expired"
    pending = (await env.client.get("/v1/me/share-intents", headers=alice.headers)).json()
    assert pending["share_intents"] == []


async def test_consent_post_without_csrf_changes_nothing(env: Env) -> None:
    url, _ = env.authorize_url()
    page = await env.client.get(url)
    import re

    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    nxt = re.search(r'name="next" value="([^"]+)"', page.text)
    assert csrf and nxt
    r = await env.client.post(
        "/oauth/login",
        data={
            "next": nxt.group(1).replace("&amp;", "&"),
            "username": "alice",
            "password": api.PASSWORD,
        },
    )
    assert r.status_code == 403 and "csrf_failed" in r.text
    await env.client.post(
        "/oauth/login",
        data={
            "csrf": csrf.group(1),
            "next": nxt.group(1).replace("&amp;", "&"),
            "username": "alice",
            "password": api.PASSWORD,
        },
    )
    before = await settled(env)
    for data in ({"decision": "allow"}, {"decision": "allow", "csrf": "forged"}):
        r = await env.client.post(url, data=data)
        assert r.status_code == 403 and "location" not in r.headers
    await _unchanged(env, before)


async def test_unknown_and_expired_click_links_are_plain_404(env: Env) -> None:
    r = await env.client.get("/s/does-not-exist")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "set-cookie" not in r.headers
