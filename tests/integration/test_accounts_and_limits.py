"""Accounts, devices, device-list events and rate limits, in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from clearpost.core.clock import FakeClock
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import api


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClock]]:
    clock = FakeClock()
    settings = fast_settings(
        tmp_path, login_rate_per_minute=6.0, login_burst=3, token_rate_per_second=2.0, token_burst=4
    )
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, clock


async def test_login_and_registration_are_rate_limited_per_ip(
    limited: tuple[httpx.AsyncClient, FakeClock],
) -> None:
    client, clock = limited
    await api.register(client, "alice")
    for _ in range(2):
        r = await client.post("/v1/login", json={"username": "alice", "password": "wrong password"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"
    r = await client.post("/v1/login", json={"username": "alice", "password": api.PASSWORD})
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1
    clock.advance(10)  # 6 per minute: one attempt back every 10 s
    r = await client.post("/v1/login", json={"username": "alice", "password": api.PASSWORD})
    assert r.status_code == 200


async def test_requests_are_rate_limited_per_token(
    limited: tuple[httpx.AsyncClient, FakeClock],
) -> None:
    client, clock = limited
    alice = await api.user(client, "alice", keys=False)
    codes = [(await client.get("/v1/devices", headers=alice.headers)).status_code for _ in range(6)]
    assert codes[:4] == [200] * 4 and codes[4:] == [429, 429]
    clock.advance(1)
    assert (await client.get("/v1/devices", headers=alice.headers)).status_code == 200


async def test_logout_kills_the_token_and_tells_contacts(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    await api.conversation(app_client, alice, "direct", bob)
    cursor = str((await api.sync(app_client, alice))["cursor"])
    assert (await app_client.post("/v1/logout", headers=bob.headers)).status_code == 204
    r = await app_client.get("/v1/devices", headers=bob.headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
    got = await api.sync(app_client, alice, cursor)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}


async def test_a_new_device_is_announced_to_contacts(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    await api.conversation(app_client, alice, "direct", bob)
    cursor = str((await api.sync(app_client, alice))["cursor"])
    bob2 = await api.login(app_client, "bob")
    got = await api.sync(app_client, alice, cursor)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert got["events"] == []  # device changes are Matrix's device_lists, not events
    devices = (await app_client.get("/v1/devices", headers=bob.headers)).json()["devices"]
    assert {d["device_id"] for d in devices} == {bob.device_id, bob2.device_id}
    assert (
        await app_client.delete(f"/v1/devices/{bob2.device_id}", headers=bob.headers)
    ).status_code == 204
    assert (await app_client.get("/v1/devices", headers=bob2.headers)).status_code == 401


async def test_fallback_key_is_used_only_when_one_time_keys_run_out(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob", otks=1)
    fallback = bob.fallback_key()
    ((fid, fkey),) = fallback.items()
    r = await app_client.post(
        "/v1/keys/upload", json={"fallback_keys": fallback}, headers=bob.headers
    )
    assert r.status_code == 200
    assert (await api.sync(app_client, bob))["device_unused_fallback_key_types"] == [
        "signed_curve25519"
    ]
    want = {"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}}
    first = (await app_client.post("/v1/keys/claim", json=want, headers=alice.headers)).json()
    second = (await app_client.post("/v1/keys/claim", json=want, headers=alice.headers)).json()
    ((first_id, first_key),) = first["one_time_keys"][bob.user_id][bob.device_id].items()
    ((second_id, second_key),) = second["one_time_keys"][bob.user_id][bob.device_id].items()
    assert "fallback" not in first_key and first_key["key"] != fkey["key"]
    assert second_id == fid and second_key == fkey and second_key["fallback"] is True
    assert first_id.startswith("signed_curve25519:")
    got = await api.sync(app_client, bob)
    assert got["device_unused_fallback_key_types"] == []
    assert got["device_one_time_keys_count"] == {"signed_curve25519": 0}


async def test_membership_changes_reach_members_and_the_removed(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    carol = await api.user(app_client, "carol")
    conv = await api.conversation(app_client, alice, "group", bob)
    cursor = str((await api.sync(app_client, bob))["cursor"])
    r = await app_client.post(
        f"/v1/conversations/{conv}/members/{carol.user_id}", headers=alice.headers
    )
    assert r.status_code == 200 and carol.user_id in r.json()["members"]
    r = await app_client.delete(
        f"/v1/conversations/{conv}/members/{bob.user_id}", headers=alice.headers
    )
    assert r.status_code == 204
    got = await api.sync(app_client, bob, cursor)
    changes = [(e["change"], e["user_id"]) for e in got["events"]]  # type: ignore[union-attr,index]
    assert changes == [("joined", carol.user_id), ("removed", bob.user_id)]
    # bob shares no conversation with alice or carol any more: Matrix's device_lists.left
    assert got["device_lists"] == {"changed": [], "left": [alice.user_id, carol.user_id]}
    r = await app_client.get(f"/v1/conversations/{conv}", headers=bob.headers)
    assert r.status_code == 404
    assert (
        await app_client.post(f"/v1/conversations/{conv}/leave", headers=carol.headers)
    ).status_code == 204
    mine = (await app_client.get("/v1/conversations", headers=alice.headers)).json()[
        "conversations"
    ]
    assert mine[0]["members"] == [alice.user_id]
