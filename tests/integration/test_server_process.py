"""Against a real ``clearpost serve`` process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import websockets

from tests.support import api
from tests.support.server import ServerProcess


async def test_full_flow_over_a_real_server(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice")
        bob = await api.user(client, "bob")
        carol = await api.user(client, "carol")
        bob_cursor = str((await api.sync(client, bob))["cursor"])
        group = await api.conversation(client, alice, "group", bob, carol)

        # Olm key sharing: alice claims one of bob's keys and sends him a to-device envelope
        r = await client.post(
            "/v1/keys/claim",
            json={"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}},
            headers=alice.headers,
        )
        assert r.json()["failures"] == {}
        ((key_id, claimed),) = r.json()["one_time_keys"][bob.user_id][bob.device_id].items()
        assert key_id.startswith("signed_curve25519:") and "fallback" not in claimed
        envelope = alice.olm_to(bob.curve, claimed["key"])
        r = await client.put(
            f"/v1/to-device/m.room.encrypted/{api.txn()}",
            headers=alice.headers,
            json={"messages": {bob.user_id: {bob.device_id: envelope}}},
        )
        assert r.json()["queued"] == 1

        sent = [await api.send(client, alice, group, f"m{i}".encode()) for i in range(3)]
        assert [s.json()["seq"] for s in sent] == [1, 2, 3]

        got = await api.sync(client, bob, bob_cursor)
        assert [m["seq"] for m in got["messages"]] == [1, 2, 3]  # type: ignore[index]
        assert got["to_device"] == {  # Matrix's to_device, content exactly as sent
            "events": [
                {
                    "type": "m.room.encrypted",
                    "sender": alice.user_id,
                    "sender_device": alice.device_id,
                    "content": envelope,
                }
            ]
        }
        assert got["device_one_time_keys_count"] == {"signed_curve25519": 4}
        # the next sync acknowledges the to-device payload: it is gone for good
        again = await api.sync(client, bob, str(got["cursor"]))
        assert again["to_device"] == {"events": []} and again["messages"] == []

        history = await client.get(
            f"/v1/conversations/{group}/messages",
            params={"after": 1, "limit": 10},
            headers=carol.headers,
        )
        assert [m["seq"] for m in history.json()["messages"]] == [2, 3]

        devices = await client.get(f"/v1/users/{bob.user_id}/devices", headers=alice.headers)
        assert devices.json()["devices"][0]["device_keys"] == bob.device_keys()


async def test_cursor_survives_a_restart(
    server: ServerProcess, tmp_path: object, db_url: str
) -> None:
    from tests.support.server import start_server

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice")
        bob = await api.user(client, "bob")
        conv = await api.conversation(client, alice, "direct", bob)
        cursor = str((await api.sync(client, bob))["cursor"])
        await api.send(client, alice, conv, b"before restart")
    server.stop()
    data_dir = server.log_path.parent
    restarted = start_server(data_dir, db_url)
    try:
        async with httpx.AsyncClient(base_url=restarted.url, timeout=30) as client:
            got = await api.sync(client, bob, cursor)
            assert len(got["messages"]) == 1  # type: ignore[arg-type]
    finally:
        restarted.stop()


async def test_websocket_stream_pushes_messages(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice")
        bob = await api.user(client, "bob")
        conv = await api.conversation(client, alice, "direct", bob)
        ws_url = server.url.replace("http://", "ws://") + "/v1/stream"
        async with websockets.connect(ws_url, additional_headers=bob.headers) as ws:
            hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert hello["cursor"].startswith("cp1_")
            await api.send(client, alice, conv, b"pushed")
            pushed = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert pushed["messages"][0]["sender"] == alice.user_id


async def test_websocket_refuses_a_missing_token(server: ServerProcess) -> None:
    """After the handshake, with close code 4401 (a browser sees the code and reason; before
    issue 16 it was a bare HTTP 403 before the handshake, contrary to docs/api.md)."""
    ws_url = server.url.replace("http://", "ws://") + "/v1/stream"
    async with websockets.connect(ws_url) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, "missing_token")


async def test_stream_deletes_to_device_payloads_only_when_the_client_acknowledges(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice")
        bob = await api.user(client, "bob")
        start = str((await api.sync(client, bob))["cursor"])
        claimed = await client.post(
            "/v1/keys/claim",
            json={"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}},
            headers=alice.headers,
        )
        (key,) = claimed.json()["one_time_keys"][bob.user_id][bob.device_id].values()
        otk = key["key"]
        ws_url = server.url.replace("http://", "ws://") + f"/v1/stream?since={start}"
        async with websockets.connect(ws_url, additional_headers=bob.headers) as ws:
            await client.put(
                f"/v1/to-device/m.room.encrypted/{api.txn()}",
                headers=alice.headers,
                json={"messages": {bob.user_id: {bob.device_id: alice.olm_to(bob.curve, otk)}}},
            )
            pushed = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert len(pushed["to_device"]["events"]) == 1
        # the client vanished without acknowledging: the payload is still there
        again = await api.sync(client, bob, start)
        assert len(again["to_device"]["events"]) == 1  # type: ignore[index]
        async with websockets.connect(ws_url, additional_headers=bob.headers) as ws:
            pushed = json.loads(await asyncio.wait_for(ws.recv(), 10))
            await ws.send(json.dumps({"ack": pushed["cursor"]}))
            await ws.send(json.dumps({"ack": pushed["cursor"]}))  # idempotent
            await asyncio.sleep(0.3)
        assert (await api.sync(client, bob, start))["to_device"] == {"events": []}
