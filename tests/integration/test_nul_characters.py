"""A NUL (U+0000) anywhere in a request is a 4xx problem, on SQLite and PostgreSQL alike.

PostgreSQL text cannot hold a NUL ("invalid byte sequence for encoding UTF8: 0x00"), so a
NUL in a path segment, a query, a JSON string or an OAuth form used to reach the driver and
come back as a 500 from about ten endpoints (SQLite stored it). It is refused at the edge
now: 400 ``invalid_parameter`` in a path or query, 422 ``nul_character`` in a JSON body,
400 ``invalid_request`` (RFC 6749) in an OAuth form. Played against real server processes.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.support import api
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(90)


def assert_problem(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["code"] == code and "NUL" in body["detail"], body


async def test_nul_in_paths_queries_bodies_and_forms(server: ServerProcess) -> None:
    # a 500 closes the connection: one connection per request, so each case stands alone
    no_reuse = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=no_reuse) as client:
        alice = await api.user(client, "alice", otks=0)
        bob = await api.user(client, "bob", otks=0)
        conv = await api.conversation(client, alice, "group", bob)
        h = alice.headers
        in_path: list[tuple[str, str, dict[str, str] | None]] = [
            ("GET", "/v1/agreements/a%00b", None),
            ("GET", "/s/a%00b", None),
            ("POST", "/v1/me/share-intents/a%00b/complete", h),
            ("DELETE", "/v1/devices/A%00B", h),
            ("GET", "/v1/conversations/c_%00", h),
            ("POST", f"/v1/conversations/{conv}/members/@a%00b", h),
            ("GET", "/v1/users/@a%00b/devices", h),
            ("GET", "/oauth/authorize?client_id=a%00b&response_type=code", None),
            ("GET", "/v1/sync?since=cp1_%00", h),
        ]
        for method, path, headers in in_path:
            body = {"recipients": 1} if method == "POST" else None
            r = await client.request(method, path, json=body, headers=headers)
            assert_problem(r, 400, "invalid_parameter")

        in_json: list[tuple[str, str, Any]] = [
            ("POST", "/v1/keys/claim", {"one_time_keys": {bob.user_id: {"A\x00B": "x"}}}),
            ("POST", "/v1/keys/query", {"device_keys": {bob.user_id: ["A\x00B"]}}),
            (
                "POST",
                "/v1/login",
                {"username": "alice", "password": api.PASSWORD, "device_name": "phone\x00"},
            ),
            ("POST", "/v1/conversations", {"kind": "group", "members": ["@a\x00b"]}),
            (
                "PUT",
                "/v1/to-device/m.room.encrypted/t1",
                {"messages": {bob.user_id: {"A\x00": {}}}},
            ),
            ("POST", "/v1/keys/upload", {"one_time_keys": {"signed_curve25519:\x00": {}}}),
        ]
        for method, path, body in in_json:
            r = await client.request(method, path, json=body, headers=h)
            assert_problem(r, 422, "nul_character")

        basic = "Basic " + base64.b64encode(b"a%00b:secret").decode()
        forms: list[tuple[str, dict[str, str], dict[str, str]]] = [
            (
                "/oauth/token",
                {"grant_type": "client_credentials", "client_id": "a\x00b", "client_secret": "x"},
                {},
            ),
            ("/oauth/token", {"grant_type": "client_credentials"}, {"Authorization": basic}),
            ("/oauth/revoke", {"token": "a\x00b", "client_id": "a\x00"}, {}),
            ("/oauth/introspect", {"token": "a\x00b"}, {"Authorization": basic}),
        ]
        for path, form, headers in forms:
            r = await client.post(path, data=form, headers=headers)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_request" and "NUL" in r.json()["detail"], r.text

        # nothing was written: alice still has exactly one device
        r = await client.get("/v1/devices", headers=h)
        assert [d["device_id"] for d in r.json()["devices"]] == [alice.device_id]
    assert "Traceback" not in server.log(), server.log()[-3000:]
