"""PostgreSQL goes away under a running ``clearpost serve`` and comes back (issue 22).

A private PostgreSQL server (``tests/support/pg.py``; never the shared one) is stopped
while SDK clients send and listen. What a user must see: 503 ``database_unavailable``
problems with ``Retry-After`` (never a 500), readiness saying so while liveness stays up,
the outage logged once (no traceback per request), WebSocket streams closed with 1013
and a retry hint (never dropped as 1006), and after the restart, without touching the
server: every message sent through the outage stored exactly once and delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clearpost.client import Client, MessageEvent, Sent
from tests.e2e.conftest import People, secret_text
from tests.support import pg
from tests.support.server import ServerProcess, start_server

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DOWN = "database unreachable since"
UP = "database reachable again after"
HINT = "database_unavailable;retry_after=2"


@pytest.fixture
def private_pg() -> Iterator[pg.PrivatePostgres]:
    server = pg.create_or_skip()
    try:
        server.create_database("clearpost")
        yield server
    finally:
        server.destroy()


@pytest.fixture
def server(tmp_path: Path, private_pg: pg.PrivatePostgres) -> Iterator[ServerProcess]:
    """``clearpost serve`` on the private PostgreSQL (overrides the shared fixture)."""
    proc = start_server(tmp_path / "srv", private_pg.url("clearpost"))
    try:
        yield proc
    finally:
        proc.stop()


async def send_all(client: Client, conv: str, texts: list[str]) -> list[Sent]:
    return [await client.send(conv, text) for text in texts]


async def messages_of(client: Client, count: int) -> list[str]:
    """The texts of the next ``count`` messages ``client`` hears on the WebSocket stream."""
    out: list[str] = []
    events = client.listen(stream=True)
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, MessageEvent):
                out.append(event.message.text)
                if len(out) == count:
                    return out
    raise AssertionError("listen() ended")


def assert_outage_logged_once(server: ServerProcess) -> None:
    log = server.log()
    assert log.count(DOWN) == 1, log[-3000:]
    assert log.count(UP) == 1, log[-3000:]
    assert "this is a bug" not in log and "unhandled error" not in log
    assert "the stream failed" not in log
    # the only errors: the outage line, and the log sequencer's retries (its own loop)
    errors = [line for line in log.splitlines() if line.startswith("ERROR:")]
    assert all(DOWN in line or "sequencer step failed" in line for line in errors), errors


async def wait_ready(http: httpx.AsyncClient) -> None:
    for _ in range(100):
        if (await http.get("/health/ready")).status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the server did not become ready again by itself")


async def test_requests_get_503_and_sdk_sends_ride_out_a_postgres_restart(
    server: ServerProcess, private_pg: pg.PrivatePostgres, people: People, http: httpx.AsyncClient
) -> None:
    alice, bob = await people.register("alice"), await people.register("bob")
    conv = await alice.direct("@bob")
    before = secret_text("before")
    await alice.send(conv, before)
    auth = {"Authorization": f"Bearer {alice.transport.token}"}

    private_pg.stop("fast")
    requests = [
        ("GET", "/v1/sync"),  # the hand-written fast path
        ("GET", f"/v1/sync?since={alice.store.cursor}&timeout=1000"),
        ("GET", "/v1/conversations"),  # through FastAPI
        ("GET", f"/v1/conversations/{conv}/messages"),
        ("GET", "/health/ready"),
        ("GET", "/health"),
    ]
    for method, path in requests * 5:
        r = await http.request(method, path, headers=auth)
        assert r.status_code == 503, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "database_unavailable"
        assert int(r.headers["retry-after"]) >= 1
    r = await http.post("/v1/login", json={"username": "alice", "password": "wrong"})
    assert (r.status_code, r.json()["code"]) == (503, "database_unavailable")
    assert (await http.get("/health/live")).status_code == 200  # the process itself is fine

    texts = [secret_text(f"during-{i}") for i in range(3)]
    sending = asyncio.create_task(send_all(alice, conv, texts))
    await asyncio.sleep(4)
    assert not sending.done(), "the sends should be waiting for the database, not failing"
    private_pg.start()
    sent = await asyncio.wait_for(sending, 90)
    await wait_ready(http)

    assert [s.seq for s in sent] == [2, 3, 4]
    r = await http.get(f"/v1/conversations/{conv}/messages", headers=auth)
    assert [m["seq"] for m in r.json()["messages"]] == [1, 2, 3, 4]  # nothing lost or doubled
    assert [m.text for m in await bob.history(conv)] == [before, *texts]
    assert_outage_logged_once(server)


async def test_streams_close_with_1013_and_the_sdk_reconnects_with_its_cursor(
    server: ServerProcess,
    private_pg: pg.PrivatePostgres,
    people: People,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, bob = await people.register("alice"), await people.register("bob")
    conv = await alice.direct("@bob")
    await alice.send(conv, secret_text("before"))
    await bob.sync()
    auth = bob.transport.auth_headers()
    url = bob.transport.stream_url(bob.store.cursor)
    caplog.set_level(logging.WARNING, logger="clearpost.client")

    early = await connect(url, additional_headers=auth)  # open before the outage
    private_pg.stop("immediate")
    late = await connect(url, additional_headers=auth)  # opened during it
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(late.recv(), 10)
    assert (late.close_code, late.close_reason) == (1013, HINT)
    # the open stream, as soon as it needs the database (at the latest: an acknowledgement)
    with contextlib.suppress(ConnectionClosed):
        await early.send(orjson.dumps({"ack": bob.store.cursor}).decode())
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(early.recv(), 10)
    assert (early.close_code, early.close_reason) == (1013, HINT)

    texts = [secret_text(f"during-{i}") for i in range(3)]
    listening = asyncio.create_task(messages_of(bob, len(texts)))
    sending = asyncio.create_task(send_all(alice, conv, texts))
    await asyncio.sleep(4)
    assert not listening.done() and not sending.done()
    private_pg.start()
    await asyncio.wait_for(sending, 90)
    assert await asyncio.wait_for(listening, 90) == texts

    backoffs = [r.getMessage() for r in caplog.records if "reconnect later" in r.getMessage()]
    assert backoffs and all("database_unavailable" in m for m in backoffs)
    waits = [float(m.rsplit("reconnecting in ", 1)[1].rstrip("s")) for m in backoffs]
    assert min(waits) >= 2.0  # at least the server's hint, not 0.5 s
    assert_outage_logged_once(server)
