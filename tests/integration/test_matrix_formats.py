"""Issue 16: Matrix's E2EE wire formats through the HTTP API, as a Matrix client sends them.

What the server accepts here is what matrix-sdk-crypto produces (the refusals of everything
else are in ``test_bad_input.py``): one key upload with device keys, one-time keys and a
fallback key; key query and claim answers in Matrix's shapes; Megolm contents without the
deprecated ``sender_key`` / ``device_id``; Olm to-device contents with ``org.matrix.msgid``;
messages as Matrix room events; sync's Matrix parts; user ids ``@name:server_name``.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from clearpost.core.e2ee.device_keys import parse_device_keys, verify_signed
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import api
from tests.support.devices import TestDevice

S = "clearpost.localhost"


async def test_one_upload_carries_device_keys_one_time_keys_and_a_fallback_key(
    app_client: httpx.AsyncClient,
) -> None:
    await api.register(app_client, "alice")
    r = await app_client.post(
        "/v1/login",
        json={"username": "alice", "password": api.PASSWORD, "device_name": "Alice's laptop"},
    )
    body = r.json()
    alice = TestDevice(body["user_id"], body["device_id"], body["access_token"])
    assert alice.user_id == f"@alice:{S}"
    upload = {
        "device_keys": alice.device_keys(),
        "one_time_keys": alice.one_time_keys(3),
        "fallback_keys": alice.fallback_key(),
    }
    r = await app_client.post("/v1/keys/upload", json=upload, headers=alice.headers)
    assert r.json() == {"one_time_key_counts": {"signed_curve25519": 3}}
    # the same device keys again change nothing; an empty upload reports the count
    r = await app_client.post(
        "/v1/keys/upload", json={"device_keys": upload["device_keys"]}, headers=alice.headers
    )
    assert r.json() == {"one_time_key_counts": {"signed_curve25519": 3}}
    assert (await app_client.post("/v1/keys/upload", json={}, headers=alice.headers)).json() == {
        "one_time_key_counts": {"signed_curve25519": 3}
    }
    got = await api.sync(app_client, alice)
    assert got["device_one_time_keys_count"] == {"signed_curve25519": 3}
    assert got["device_unused_fallback_key_types"] == ["signed_curve25519"]

    bob = await api.user(app_client, "bob")
    query = {"device_keys": {alice.user_id: []}}
    r = await app_client.post("/v1/keys/query", json=query, headers=bob.headers)
    published = {**upload["device_keys"], "unsigned": {}}
    assert r.json()["failures"] == {}
    assert r.json()["device_keys"] == {alice.user_id: {alice.device_id: published}}
    queried = r.json()["device_keys"][alice.user_id][alice.device_id]
    ident = parse_device_keys(queried, alice.user_id, alice.device_id)  # signature verifies
    assert ident.curve25519 == alice.curve
    # the owner also sees the device's name; a list names the devices wanted
    r = await app_client.post("/v1/keys/query", json=query, headers=alice.headers)
    mine = r.json()["device_keys"][alice.user_id][alice.device_id]
    assert mine["unsigned"] == {"device_display_name": "Alice's laptop"}
    r = await app_client.post(
        "/v1/keys/query",
        json={"device_keys": {alice.user_id: ["NOSUCHDEVI"], f"@nobody:{S}": []}, "timeout": 10},
        headers=bob.headers,
    )
    assert r.json() == {"device_keys": {alice.user_id: {}, f"@nobody:{S}": {}}, "failures": {}}

    # claims: a signed one-time key, in Matrix's shape, verifiable against the device keys
    claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
    r = await app_client.post("/v1/keys/claim", json=claim, headers=bob.headers)
    assert r.json()["failures"] == {}
    ((key_id, key),) = r.json()["one_time_keys"][alice.user_id][alice.device_id].items()
    assert key == upload["one_time_keys"][key_id]
    verify_signed(key, alice.user_id, alice.device_id, ident.ed25519)


async def test_messages_are_matrix_room_events(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    conv = await api.conversation(app_client, alice, "direct", bob)
    r = await app_client.get(f"/v1/conversations/{conv}", headers=bob.headers)
    assert r.json()["room_id"] == f"!{conv}:{S}"
    assert r.json()["members"] == [alice.user_id, bob.user_id]
    cursor = str((await api.sync(app_client, bob))["cursor"])
    # as matrix-sdk-crypto sends it (no sender_key, no device_id), and with both
    contents = [alice.megolm(b"one"), alice.megolm(b"two", deprecated=True)]
    for i, content in enumerate(contents, 1):
        r = await app_client.put(
            f"/v1/conversations/{conv}/messages/{api.txn()}", json=content, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["event_id"] == f"${conv}.{i}"
    got = await api.sync(app_client, bob, cursor)
    messages = got["messages"]
    assert isinstance(messages, list)
    for i, (message, content) in enumerate(zip(messages, contents, strict=True), 1):
        ts = message.pop("origin_server_ts")
        assert isinstance(ts, int) and ts > 0
        assert message == {
            "type": "m.room.encrypted",
            "event_id": f"${conv}.{i}",
            "room_id": f"!{conv}:{S}",
            "sender": alice.user_id,
            "content": content,
            "conversation_id": conv,
            "seq": i,
            "sender_device": alice.device_id,
        }
    history = await app_client.get(f"/v1/conversations/{conv}/messages", headers=bob.headers)
    assert [m["event_id"] for m in history.json()["messages"]] == [f"${conv}.1", f"${conv}.2"]
    assert [m["content"] for m in history.json()["messages"]] == contents


async def test_to_device_is_matrix_send_to_device(app_client: httpx.AsyncClient) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    content = {**alice.olm_to(bob.curve, bob.curve), "org.matrix.msgid": "a1b2c3"}
    body = {"messages": {bob.user_id: {bob.device_id: content, "NOSUCHDEVI": content}}}
    r = await app_client.put(
        f"/v1/to-device/m.room.encrypted/{api.txn()}", json=body, headers=alice.headers
    )
    assert r.json() == {
        "queued": 1,
        "unknown_devices": [{"user_id": bob.user_id, "device_id": "NOSUCHDEVI"}],
    }
    got = await api.sync(app_client, bob)
    assert got["to_device"] == {
        "events": [
            {
                "type": "m.room.encrypted",
                "sender": alice.user_id,
                "sender_device": alice.device_id,
                "content": content,
            }
        ]
    }


async def test_device_lists_name_users_whose_devices_changed(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    cursor = str((await api.sync(app_client, alice))["cursor"])
    bob = await api.user(app_client, "bob")
    await api.conversation(app_client, bob, "group", alice)
    got = await api.sync(app_client, alice, cursor)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}  # a new room-mate
    cursor = str(got["cursor"])
    await api.login(app_client, "bob")  # a new device of bob's
    got = await api.sync(app_client, alice, cursor)
    assert got["device_lists"] == {"changed": [bob.user_id], "left": []}
    assert got["events"] == []


async def test_every_id_carries_the_configured_server_name(tmp_path: Path) -> None:
    name = "chat.example.org:8448"
    app = create_app(fast_settings(tmp_path, server_name=name))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert await api.register(c, "alice") == f"@alice:{name}"
            alice = await api.login(c, "alice")
            bob = await api.user(c, "bob")
            conv = await api.conversation(c, alice, "group", bob)
            r = await c.get(f"/v1/conversations/{conv}", headers=alice.headers)
            assert r.json()["room_id"] == f"!{conv}:{name}"
            assert r.json()["created_by"] == f"@alice:{name}"
            r = await c.post(
                "/v1/conversations",
                json={"kind": "direct", "members": [f"@bob:{S}"]},
                headers=alice.headers,
            )
            assert r.status_code == 422 and r.json()["code"] == "foreign_user_id"
            assert name in r.json()["detail"] and S in r.json()["detail"]


async def test_to_device_star_reaches_every_device_of_the_user(
    app_client: httpx.AsyncClient,
) -> None:
    alice = await api.user(app_client, "alice")
    bob = await api.user(app_client, "bob")
    bob2 = await api.login(app_client, "bob")
    content = alice.olm_to(bob.curve, bob.curve)
    second = alice.olm_to(bob2.curve, bob2.curve)
    # one content with a ciphertext for each of bob's devices, as Matrix's "*" allows
    content["ciphertext"] |= second["ciphertext"]
    body = {"messages": {bob.user_id: {"*": content}}}
    r = await app_client.put(
        f"/v1/to-device/m.room.encrypted/{api.txn()}", json=body, headers=alice.headers
    )
    assert r.json() == {"queued": 2, "unknown_devices": []}
    for device in (bob, bob2):
        got = await api.sync(app_client, device)
        assert [e["content"] for e in got["to_device"]["events"]] == [content]  # type: ignore[index]
