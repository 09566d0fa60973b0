"""What a device publishes for others is bounded in depth and size, and refused whole.

Device keys, one-time keys and fallback keys are stored as the device sent them and served
to everyone who looks the device up or claims a key. Parts of them are covered by no
signature the server checks (``unsigned``, other users' ``signatures``), and the rest is
whatever the device chose to sign. Before the limits, an ``unsigned`` nested 254 to 1,020
levels deep was a 500 (the JSON encoder's recursion limit) and anything shallower was stored
and served, up to the request size. Now: 422 ``json_too_deep`` past 8 levels, 413
``json_too_large`` past 4 KiB (device keys) or 1 KiB (each signed key), nothing stored.
Played against real server processes on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from clearpost.core.limits import MAX_DEVICE_KEYS_BYTES, MAX_JSON_DEPTH, MAX_SIGNED_KEY_BYTES
from tests.support import api
from tests.support.devices import TestDevice
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(90)


def nested(depth: int) -> Any:
    """Arrays nested ``depth`` deep: ``nested(2) == [[]]``."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_text(obj: dict[str, Any], depth: int) -> bytes:
    """``obj`` as JSON with its ``"DEEP"`` string replaced by arrays ``depth`` deep (built as
    text: Python's own encoder stops near 1,000 levels)."""
    return json.dumps(obj).replace('"DEEP"', "[" * depth + "]" * depth).encode()


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == code and body["status"] == status and body["detail"].strip(), body


async def published_keys(client: httpx.AsyncClient, viewer: TestDevice, dev: TestDevice) -> Any:
    r = await client.get(f"/v1/users/{dev.user_id}/devices", headers=viewer.headers)
    assert r.status_code == 200, r.text
    (device,) = [d for d in r.json()["devices"] if d["device_id"] == dev.device_id]
    return device["device_keys"]


async def unclaimed(client: httpx.AsyncClient, dev: TestDevice) -> int:
    body = await api.sync(client, dev)
    return int(body["device_one_time_keys_count"]["signed_curve25519"])  # type: ignore[index]


async def test_device_keys_too_deep_or_too_big_are_refused_and_not_stored(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bob = await api.user(client, "bob", otks=0)
        await api.register(client, "alice")
        alice = await api.login(client, "alice", keys=False)
        path = "/v1/keys/upload"
        signed = alice.device_keys()  # ``unsigned`` is outside the signature

        for depth in (300, 1020, MAX_JSON_DEPTH):  # 8 under device_keys: 9 deep in all
            body = deep_text({"device_keys": {**signed, "unsigned": "DEEP"}}, depth)
            r = await client.post(path, content=body, headers=alice.headers)
            assert_problem(r, 422, "json_too_deep")
        padded = {**signed, "unsigned": {"note": "x" * MAX_DEVICE_KEYS_BYTES}}  # 16 KiB body
        r = await client.post(path, json={"device_keys": padded}, headers=alice.headers)
        assert_problem(r, 413, "json_too_large")
        assert await published_keys(client, bob, alice) is None  # nothing was stored

        # Matrix-shaped keys with a small ``unsigned`` are fine, and served as sent
        kept = {**signed, "unsigned": {"device_display_name": "phone"}}
        r = await client.post(path, json={"device_keys": kept}, headers=alice.headers)
        assert r.status_code == 200, r.text
        assert await published_keys(client, bob, alice) == kept
    assert "Traceback" not in server.log(), server.log()[-3000:]


async def test_one_time_and_fallback_keys_too_deep_or_too_big_are_refused(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        alice = await api.user(client, "alice", otks=0)
        bob = await api.user(client, "bob", otks=0)

        def one_key(**extra_signatures: Any) -> tuple[str, dict[str, Any]]:
            ((key_id, key),) = alice.one_time_keys(1).items()
            return key_id, {**key, "signatures": {**key["signatures"], **extra_signatures}}

        # other users' "signatures" are not checked: a place to hide data in
        key_id, key = one_key(**{"@x": nested(300)})
        r = await client.post(
            "/v1/keys/upload", json={"one_time_keys": {key_id: key}}, headers=alice.headers
        )
        assert_problem(r, 422, "json_too_deep")
        key_id, key = one_key(**{"@x": {"k": "x" * MAX_SIGNED_KEY_BYTES}})
        r = await client.post(
            "/v1/keys/upload", json={"one_time_keys": {key_id: key}}, headers=alice.headers
        )
        assert_problem(r, 413, "json_too_large")
        # a deep value the device signed itself is bounded all the same
        ((fb_id, fb),) = alice.one_time_keys(1).items()
        fallback = alice.sign({"key": fb["key"], "fallback": nested(300)})
        r = await client.post(
            "/v1/keys/upload", json={"fallback_keys": {fb_id: fallback}}, headers=alice.headers
        )
        assert_problem(r, 422, "json_too_deep")
        # one bad key refuses the whole upload: the good one beside it is not kept either
        good = alice.one_time_keys(1)
        bad_id, bad = one_key(**{"@x": nested(300)})
        r = await client.post(
            "/v1/keys/upload",
            json={"one_time_keys": {**good, bad_id: bad}},
            headers=alice.headers,
        )
        assert_problem(r, 422, "json_too_deep")
        assert await unclaimed(client, alice) == 0

        # ordinary signed keys still go through and are what a claim hands out
        r = await client.post(
            "/v1/keys/upload", json={"one_time_keys": good}, headers=alice.headers
        )
        assert r.status_code == 200, r.text
        want = {alice.user_id: {alice.device_id: "signed_curve25519"}}
        r = await client.post("/v1/keys/claim", json={"one_time_keys": want}, headers=bob.headers)
        claimed = r.json()["one_time_keys"][alice.user_id][alice.device_id]
        assert claimed == good
    assert "Traceback" not in server.log(), server.log()[-3000:]
