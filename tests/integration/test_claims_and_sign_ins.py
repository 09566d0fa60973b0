"""Bounds of issue 15: key claims are de-duplicated and bounded per caller and device, and
wrong passwords are bounded per account, not only per IP."""

from __future__ import annotations

from pathlib import Path

import httpx

from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import api


async def counts(client: httpx.AsyncClient, dev: api.TestDevice) -> int:
    r = await client.post("/v1/keys/upload", json={}, headers=dev.headers)
    return int(r.json()["one_time_key_counts"]["signed_curve25519"])


async def test_a_claim_counts_each_device_once_and_claims_are_bounded(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    assert await counts(app_client, bob) == 5
    # a JSON object cannot name a device twice, but a body can repeat a key: the last wins
    named = ", ".join([f'"{bob.device_id}": "signed_curve25519"'] * 1000)
    raw = f'{{"one_time_keys": {{"{bob.user_id}": {{{named}}}}}}}'
    r = await app_client.post(
        "/v1/keys/claim",
        content=raw.encode(),
        headers={**alice.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    (key,) = r.json()["one_time_keys"][bob.user_id][bob.device_id].values()
    assert "fallback" not in key
    assert await counts(app_client, bob) == 4  # before: all five gone, then the fallback
    one = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    for _ in range(4):
        r = await app_client.post("/v1/keys/claim", json=one, headers=alice.headers)
        assert r.status_code == 200
    for _ in range(5):  # ten a minute: the fallback key now
        r = await app_client.post("/v1/keys/claim", json=one, headers=alice.headers)
        assert r.status_code == 200
    r = await app_client.post("/v1/keys/claim", json=one, headers=alice.headers)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited", r.text
    carol = await api.user(app_client, "carol")  # another caller has its own bound
    r = await app_client.post("/v1/keys/claim", json=one, headers=carol.headers)
    assert r.status_code == 200


async def test_wrong_passwords_are_bounded_per_account_across_ips(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path, login_rate_per_minute=0.0))
    async with app.router.lifespan_context(app):
        first = httpx.ASGITransport(app=app, client=("10.0.0.1", 1))
        async with httpx.AsyncClient(transport=first, base_url="http://test") as c:
            await api.register(c, "alice")
        for i in range(10):  # ten addresses, one guess each
            t = httpx.ASGITransport(app=app, client=(f"10.0.1.{i}", 1))
            async with httpx.AsyncClient(transport=t, base_url="http://test") as c:
                r = await c.post("/v1/login", json={"username": "alice", "password": "guess" * 3})
                assert r.status_code == 401
        t = httpx.ASGITransport(app=app, client=("10.0.2.1", 1))
        async with httpx.AsyncClient(transport=t, base_url="http://test") as c:
            r = await c.post("/v1/login", json={"username": "alice", "password": api.PASSWORD})
            assert r.status_code == 429 and r.json()["code"] == "rate_limited"
            r = await c.post("/v1/login", json={"username": "bob", "password": api.PASSWORD})
            assert r.status_code == 401  # other accounts are not affected
