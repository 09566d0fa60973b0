"""Small helpers that drive the HTTP API the way a client would."""

from __future__ import annotations

import itertools

import httpx

from tests.support.devices import TestDevice

PASSWORD = "correct horse battery"
_txn = itertools.count(1)


def txn() -> str:
    return f"t{next(_txn)}"


async def register(client: httpx.AsyncClient, username: str) -> str:
    r = await client.post("/v1/accounts", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["user_id"])


async def login(
    client: httpx.AsyncClient, username: str, *, keys: bool = True, otks: int = 5
) -> TestDevice:
    r = await client.post("/v1/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    dev = TestDevice(body["user_id"], body["device_id"], body["access_token"])
    if keys:
        body: dict[str, object] = {"device_keys": dev.device_keys()}
        if otks:
            body["one_time_keys"] = dev.one_time_keys(otks)
        r = await client.post("/v1/keys/upload", json=body, headers=dev.headers)
        assert r.status_code == 200, r.text
    return dev


async def user(client: httpx.AsyncClient, username: str, **kw: object) -> TestDevice:
    await register(client, username)
    return await login(client, username, **kw)  # type: ignore[arg-type]


async def conversation(
    client: httpx.AsyncClient, owner: TestDevice, kind: str, *members: TestDevice
) -> str:
    r = await client.post(
        "/v1/conversations",
        json={"kind": kind, "members": [m.user_id for m in members]},
        headers=owner.headers,
    )
    assert r.status_code in (200, 201), r.text
    return str(r.json()["conversation_id"])


async def send(
    client: httpx.AsyncClient,
    dev: TestDevice,
    conv: str,
    text: bytes = b"hi",
    txn_id: str | None = None,
) -> httpx.Response:
    return await client.put(
        f"/v1/conversations/{conv}/messages/{txn_id or txn()}",
        json=dev.megolm(text),
        headers=dev.headers,
    )


async def sync(
    client: httpx.AsyncClient, dev: TestDevice, since: str | None = None, timeout: int = 0
) -> dict[str, object]:
    params: dict[str, str | int] = {"timeout": timeout}
    if since:
        params["since"] = since
    r = await client.get("/v1/sync", params=params, headers=dev.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())
