"""A partner agreement and the consent dance, for tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client

REDIRECT = "http://127.0.0.1:8765/callback"
PASSWORD = "correct horse battery"  # the one tests/support/api.py registers with

AGREEMENT = """
id = "streamco"
name = "StreamCo"
homepage = "https://streamco.example"
redirect_uris = ["http://127.0.0.1:8765/callback"]
link_domains = ["streamco.example"]
scopes = ["profile:basic", "share:intent", "reports:read"]
purposes = ["Let viewers tell friends what they are watching"]
retention = "Share intents are deleted after 24 hours; reports are kept for two years."
report_cadence_days = 14
epsilon_per_period = 1.0
contact = "privacy@streamco.example"
"""


async def approve(
    client: httpx.AsyncClient,
    authorize_url: str,
    username: str,
    password: str,
    decision: str = "allow",
) -> httpx.Response:
    """Sign in on the consent page and press Allow (or Deny); returns the final redirect."""
    page = await client.get(authorize_url)
    assert page.status_code == 200, page.text
    if 'action="/oauth/login"' in page.text:
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        nxt = re.search(r'name="next" value="([^"]+)"', page.text)
        assert csrf and nxt
        signed_in = await client.post(
            "/oauth/login",
            data={
                "csrf": csrf.group(1),
                "next": nxt.group(1).replace("&amp;", "&"),
                "username": username,
                "password": password,
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        page = await client.get(signed_in.headers["location"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert csrf and action, page.text
    return await client.post(
        action.group(1).replace("&amp;", "&"), data={"csrf": csrf.group(1), "decision": decision}
    )


def code_from(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


@dataclass
class World:
    client: httpx.AsyncClient
    partner_id: str
    secret: str
    transport: httpx.ASGITransport


def oauth_client(w: World, **kw: object) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=w.partner_id,
        client_secret=w.secret,
        redirect_uri=REDIRECT,
        scope="profile:basic share:intent",
        code_challenge_method="S256",
        transport=w.transport,
        base_url="http://test",
        **kw,
    )


async def consent(w: World, oauth: AsyncOAuth2Client) -> tuple[str, str]:
    verifier = generate_token(48)
    url, state = oauth.create_authorization_url(
        "http://test/oauth/authorize", code_verifier=verifier
    )
    done = await approve(w.client, url, "alice", PASSWORD)
    params = code_from(done)
    assert params["state"] == [state]
    assert params["iss"] == ["http://127.0.0.1:8448"]
    return params["code"][0], verifier
