"""OAuth findings of issue 15: token-endpoint parameters only from the body (RFC 6749 §3.2),
a replayed code revokes what it issued (§4.1.2), a rotated refresh token introspects as
inactive, and a non-ASCII ``csrf`` is a refusal, not a 500."""

from __future__ import annotations

from tests.support.partner import REDIRECT, World, consent, oauth_client


async def test_parameters_in_the_query_string_are_refused(world: World) -> None:
    auth = (world.partner_id, world.secret)
    # before: the scope in the query escaped the check and a profile:basic token came back
    r = await world.client.post(
        "/oauth/token?grant_type=client_credentials&scope=profile:basic", auth=auth
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert "access_token" not in r.json()
    r = await world.client.post(
        "/oauth/token?scope=profile:basic",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        auth=auth,
    )
    assert r.status_code == 400 and "query string" in r.json()["error_description"]
    for path in ("/oauth/revoke", "/oauth/introspect"):
        r = await world.client.post(path + "?token=x", data={"token": "y"}, auth=auth)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (path, r.text)
    ok = await world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        auth=auth,
    )
    assert ok.status_code == 200


async def test_a_replayed_code_revokes_the_tokens_it_issued(world: World) -> None:
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        token = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
        assert (await oauth.get("http://test/v1/partner/me")).status_code == 200
        again = await world.client.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": REDIRECT,
            },
            auth=(world.partner_id, world.secret),
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        r = await world.client.get(
            "/v1/partner/me", headers={"Authorization": f"Bearer {token['access_token']}"}
        )
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
        r = await world.client.post(
            "/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
            auth=(world.partner_id, world.secret),
        )
        assert r.status_code == 400


async def test_a_rotated_refresh_token_is_not_active(world: World) -> None:
    auth = (world.partner_id, world.secret)
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        first = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
        second = await oauth.refresh_token(
            "http://test/oauth/token", refresh_token=first["refresh_token"]
        )
    r = await world.client.post(
        "/oauth/introspect", data={"token": first["refresh_token"]}, auth=auth
    )
    assert r.status_code == 200 and r.json() == {"active": False}, r.text
    r = await world.client.post(
        "/oauth/introspect", data={"token": second["refresh_token"]}, auth=auth
    )
    assert r.json()["active"] is True


async def test_a_non_ascii_csrf_is_refused_not_a_crash(world: World) -> None:
    world.client.cookies.set("cp_pre", "abc", path="/oauth")
    r = await world.client.post(
        "/oauth/login",
        data={"csrf": "é", "next": "/oauth/authorize?x", "username": "alice", "password": "x"},
    )
    assert r.status_code == 403 and "csrf_failed" in r.text
    async with oauth_client(world) as oauth:
        await consent(world, oauth)  # signs Alice in: a consent session exists
        url, _ = oauth.create_authorization_url(
            "http://test/oauth/authorize", code_verifier="v" * 48
        )
        r = await world.client.post(
            url.removeprefix("http://test"), data={"csrf": "ü€", "decision": "allow"}
        )
    assert r.status_code == 403 and "csrf_failed" in r.text
