"""Revocation wins the race with a token lookup (issue 15: a lookup that read a device just
before its deletion put the deleted device's token back in the cache, about 1 in 1,100)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from clearpost.server.services.accounts import token_hash
from tests.support import api


async def test_a_lookup_racing_a_deletion_does_not_revive_the_token(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    second = await api.login(app_client, "alice")
    accounts = app_client.app.state.services.accounts  # type: ignore[attr-defined]
    read, hold = asyncio.Event(), asyncio.Event()
    real = accounts.accounts.device_for_token
    target = token_hash(second.access_token)

    async def slow_read(hashed: str) -> Any:
        found = await real(hashed)
        if hashed == target:  # this lookup has read the device; let the deletion happen now
            read.set()
            await hold.wait()
        return found

    accounts.accounts.device_for_token = slow_read
    accounts.forget(None)  # nothing cached: the next lookup reads the database
    try:
        async with asyncio.timeout(10):
            lookup = asyncio.create_task(accounts.authenticate(second.access_token))
            await read.wait()
            r = await app_client.delete(f"/v1/devices/{second.device_id}", headers=alice.headers)
            assert r.status_code == 204
            hold.set()
            await lookup  # it began before the deletion, so it may still answer
    finally:
        accounts.accounts.device_for_token = real
    r = await app_client.get("/v1/devices", headers=second.headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"
