"""A damaged log database gives a clear 5xx problem, logged once, never an anonymous 500.

The server's own broken data is not the client's fault, so it stays a 5xx, but one that says
what is broken and where: code ``stored_data_damaged`` and "stored log data is damaged at
<where>", logged once per process (not a traceback per request). Each test damages a real
database, SQLite and PostgreSQL, with the server stopped (a column's type or value changed,
a tile row deleted), starts a server on it again and asks what an auditor would ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_log_audit import Tamper, grow
from tests.support.server import ServerProcess, start_server

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


class Servers:
    """One server process at a time on one database, restarted around each damage."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.url = root, url
        self.current: ServerProcess | None = None

    def start(self) -> ServerProcess:
        self.stop()
        # the same data dir (log signing key), a fresh log file per start
        self.current = start_server(self.root, self.url)
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture
def servers(tmp_path: Path, db_url: str) -> Iterator[Servers]:
    s = Servers(tmp_path / "srv", db_url)
    try:
        yield s
    finally:
        s.stop()


def assert_damaged(r: httpx.Response, where: str) -> dict[str, Any]:
    assert r.status_code == 500, f"{r.status_code} {r.text[:300]}"
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == "stored_data_damaged", body
    assert body["type"] == "urn:clearpost:problem:stored_data_damaged", body
    assert body["status"] == 500 and body["title"], body
    assert body["detail"] == f"stored log data is damaged at {where}", body
    return body


def assert_logged_once(server: ServerProcess, *details: str) -> None:
    log = server.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]
    for detail in details:
        assert log.count(f"{detail} (stored_data_damaged)") == 1, log[-3000:]


async def test_entry_body_turned_to_text(servers: Servers) -> None:
    size = await grow(servers.start().url, "user", 3)
    tamper = Tamper(servers.url)
    servers.stop()
    if servers.url.startswith("sqlite"):
        await tamper.run("UPDATE tlog_entries SET body = CAST(body AS TEXT) WHERE idx = 1")
    else:  # the column itself changes type, every row with it
        await tamper.run(
            "ALTER TABLE tlog_entries ALTER COLUMN body TYPE text USING convert_from(body, 'UTF8')"
        )
    server = servers.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            text = assert_damaged(
                await client.get("/v1/log/entries?start=1&end=2"),
                "entry 1: its body is str, not bytes",
            )["detail"]
        # the proofs do not read entries: they still answer
        r = await client.get(f"/v1/log/proof/inclusion?index=1&size={size}")
        assert r.status_code == 200, r.text
    assert_logged_once(server, text)


async def test_a_deleted_tile_row(servers: Servers) -> None:
    size = await grow(servers.start().url, "user", 3)
    tamper = Tamper(servers.url)
    servers.stop()
    await tamper.run("DELETE FROM tlog_tiles WHERE level = 0 AND idx = 0")
    server = servers.start()
    node = (
        "tree node (level 0, index 1): tile (level 0, index 0) is missing or holds fewer than"
        " 2 hashes"
    )
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        fast = await client.get(f"/v1/log/proof/inclusion?index=0&size={size}")  # fast path
        slow = await client.get(f"/v1/log/proof/inclusion?index=%30&size={size}")  # FastAPI
        detail = assert_damaged(fast, node)["detail"]
        assert (slow.status_code, slow.json()) == (fast.status_code, fast.json())
        ((first,),) = await tamper.run("SELECT min(size) FROM tlog_checkpoints")
        r = await client.get(f"/v1/log/proof/consistency?from={first}&to={size}")
        assert r.json()["code"] == "stored_data_damaged", r.text
        # the entries themselves are intact and still served
        r = await client.get(f"/v1/log/entries?start=0&end={size}")
        assert r.status_code == 200 and len(r.json()["entries"]) == size, r.text
    assert_logged_once(server, detail)


async def test_tile_hashes_turned_to_text(servers: Servers) -> None:
    size = await grow(servers.start().url, "user", 3)
    tamper = Tamper(servers.url)
    servers.stop()
    if servers.url.startswith("sqlite"):
        await tamper.run("UPDATE tlog_tiles SET hashes = hex(hashes)")
    else:
        await tamper.run(
            "ALTER TABLE tlog_tiles ALTER COLUMN hashes TYPE text USING encode(hashes, 'hex')"
        )
    server = servers.start()
    where = "tile (level 0, index 0): its hashes is str, not bytes"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(3):
            r = await client.get(f"/v1/log/proof/inclusion?index=0&size={size}")
            detail = assert_damaged(r, where)["detail"]
    assert_logged_once(server, detail)
