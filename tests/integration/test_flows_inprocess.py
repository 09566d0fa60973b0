"""The client API end to end, in-process on SQLite (fast); real-process runs are elsewhere."""

from __future__ import annotations

import asyncio

import httpx

from tests.support import api


async def test_direct_conversation_send_and_sync(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    first = await api.sync(app_client, bob)
    conv = await api.conversation(app_client, alice, "direct", bob)
    r = await api.send(app_client, alice, conv, b"one")
    assert r.status_code == 200 and r.json()["seq"] == 1
    got = await api.sync(app_client, bob, str(first["cursor"]))
    assert [m["seq"] for m in got["messages"]] == [1]
    assert any(e["type"] == "membership" for e in got["events"])
    # the same pair gets the same direct conversation back
    assert await api.conversation(app_client, bob, "direct", alice) == conv


async def test_long_poll_wakes_on_message(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    conv = await api.conversation(app_client, alice, "group", bob)
    cursor = (await api.sync(app_client, bob))["cursor"]
    waiting = asyncio.create_task(api.sync(app_client, bob, str(cursor), timeout=10_000))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await api.send(app_client, alice, conv, b"wake up")
    got = await asyncio.wait_for(waiting, 5)
    assert len(got["messages"]) == 1
