"""OAuth 2.0 with authlib's own client against the app in-process (the browser run is in e2e)."""

from __future__ import annotations

import asyncio
import base64

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.support import api
from tests.support.partner import REDIRECT, World, consent, oauth_client


async def test_code_flow_with_pkce_then_partner_api(world: World) -> None:
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        token = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
        assert token["expires_in"] == 600 and token["refresh_token"].startswith("cpr_")
        me = await oauth.get("http://test/v1/partner/me")
        assert me.status_code == 200, me.text
        assert me.json()["display_name"] is None and me.json()["id"].startswith("pu_")
        assert int(me.headers["clearpost-log-index"]) >= 0
        # the code is single-use
        again = await oauth.post(
            "http://test/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
                "client_id": world.partner_id,
                "client_secret": world.secret,
            },
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_refresh_rotation_and_reuse_revokes_the_grant(world: World) -> None:
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        first = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
        second = await oauth.refresh_token(
            "http://test/oauth/token", refresh_token=first["refresh_token"]
        )
        assert second["refresh_token"] != first["refresh_token"]
        reuse = await world.client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
            auth=(world.partner_id, world.secret),
        )
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        # the whole grant is gone: the newest tokens are dead too
        r = await world.client.get(
            "/v1/partner/me", headers={"Authorization": f"Bearer {second['access_token']}"}
        )
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"


async def test_pkce_is_required_at_the_authorization_endpoint(world: World) -> None:
    url = (
        f"/oauth/authorize?response_type=code&client_id={world.partner_id}"
        f"&redirect_uri={REDIRECT}&scope=share:intent&state=xyz"
    )
    r = await world.client.get(url)
    assert r.status_code == 302
    assert "error=invalid_request" in r.headers["location"] and "state=xyz" in r.headers["location"]
    assert "iss=" in r.headers["location"]
    challenge = create_s256_code_challenge("v" * 50)
    bad_redirect = (
        url.replace("8765/callback", "8765/evil")
        + f"&code_challenge={challenge}&code_challenge_method=S256"
    )
    r = await world.client.get(bad_redirect)
    assert (
        r.status_code == 400 and "location" not in r.headers
    )  # never redirect to an unregistered URI


async def test_client_credentials_for_reports_only(world: World) -> None:
    basic = "Basic " + base64.b64encode(f"{world.partner_id}:{world.secret}".encode()).decode()
    r = await world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        headers={"Authorization": basic},
    )
    assert r.status_code == 200, r.text
    assert "refresh_token" not in r.json()
    r = await world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "share:intent"},
        headers={"Authorization": basic},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    wrong = "Basic " + base64.b64encode(f"{world.partner_id}:nope".encode()).decode()
    r = await world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        headers={"Authorization": wrong},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_revocation_and_introspection(world: World) -> None:
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        token = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
    auth = (world.partner_id, world.secret)
    r = await world.client.post(
        "/oauth/introspect", data={"token": token["access_token"]}, auth=auth
    )
    assert (
        r.status_code == 200 and r.json()["active"] is True and r.json()["client_id"] == "streamco"
    )
    r = await world.client.post("/oauth/revoke", data={"token": token["refresh_token"]}, auth=auth)
    assert r.status_code == 200
    r = await world.client.post(
        "/oauth/introspect", data={"token": token["access_token"]}, auth=auth
    )
    assert r.json() == {"active": False}
    meta = (await world.client.get("/.well-known/oauth-authorization-server")).json()
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True


async def test_user_sees_and_revokes_the_app(world: World) -> None:
    alice_dev = await api.login(world.client, "alice", keys=False)
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        token = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
        r = await oauth.post(
            "http://test/v1/partner/share-intents",
            json={"title": "Night Train", "url": "https://streamco.example/t/1"},
        )
        assert r.status_code == 201, r.text
        r = await oauth.post(
            "http://test/v1/partner/share-intents",
            json={"title": "x", "url": "https://evil.example/t/1"},
        )
        assert r.status_code == 422 and r.json()["code"] == "link_domain_not_allowed"
    apps = (await world.client.get("/v1/me/apps", headers=alice_dev.headers)).json()["apps"]
    assert apps[0]["partner_id"] == "streamco" and apps[0]["last_access"] is not None
    pending = (await world.client.get("/v1/me/share-intents", headers=alice_dev.headers)).json()
    link = pending["share_intents"][0]["link"]
    r = await world.client.get(link.replace("http://127.0.0.1:8448", ""))
    assert r.status_code == 302 and r.headers["location"] == "https://streamco.example/t/1"
    assert "set-cookie" not in r.headers
    r = await world.client.delete("/v1/me/apps/streamco", headers=alice_dev.headers)
    assert r.status_code == 200
    r = await world.client.get(
        "/v1/partner/me", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert r.status_code == 401
    r = await world.client.get(
        "/v1/devices", headers={"Authorization": f"Bearer {token['access_token']}"}
    )
    assert r.status_code == 403 and r.json()["code"] == "scope_not_allowed"


async def test_last_access_is_written_at_most_once_a_minute(world: World) -> None:
    """Every partner call used to write the grant's last access; now the first call in a
    minute does, and ``me/apps`` still shows when the app was last used."""
    alice_dev = await api.login(world.client, "alice", keys=False)
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        await oauth.fetch_token("http://test/oauth/token", code=code, code_verifier=verifier)

        async def call_and_read() -> int:
            r = await oauth.get("http://test/v1/partner/me")
            assert r.status_code == 200, r.text
            apps = (await world.client.get("/v1/me/apps", headers=alice_dev.headers)).json()
            return int(apps["apps"][0]["last_access"])

        first = await call_and_read()
        await asyncio.sleep(0.02)  # the clock moves on; the recorded access does not
        assert await call_and_read() == first
