"""Fixtures for the Matrix interop suite: a real ``clearpost serve`` (SQLite, access log on),
Python SDK devices (``people``) and matrix-sdk-crypto devices (``rust``).

After each test the server's access log must show no 5xx and no traceback."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, People
from tests.interop.matrix.rust import RustDevice, node_or_skip
from tests.support.server import ServerProcess, start_server

collect_ignore = ["node_modules"]

FIVE_XX = re.compile(r'"[A-Z]+ [^"]*" 5\d\d ')

RustFactory = Callable[..., Awaitable[RustDevice]]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the formats do not depend on the database."""
    return f"sqlite+aiosqlite:///{tmp_path / 'clearpost.db'}"


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    node_or_skip()  # before starting anything
    proc = start_server(tmp_path / "srv", db_url, {"CLEARPOST_ACCESS_LOG": "true"})
    try:
        yield proc
    finally:
        proc.stop()
    log = proc.log()
    bad = [line for line in log.splitlines() if FIVE_XX.search(line)]
    assert not bad, "5xx in the server log:\n" + "\n".join(bad)
    assert "Traceback" not in log, f"a traceback in the server log:\n{log[-4000:]}"


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def people(http: httpx.AsyncClient, tmp_path: Path) -> AsyncIterator[People]:
    crowd = People(http, tmp_path / "stores")
    try:
        yield crowd
    finally:
        await crowd.close()


@pytest.fixture
async def rust(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> AsyncIterator[RustFactory]:
    """``await rust("rita")`` registers rita and logs in a matrix-sdk-crypto device;
    ``await rust("rita", register=False, device="laptop")`` adds a device to an account."""
    started: list[RustDevice] = []

    async def make(username: str, *, register: bool = True, device: str = "rust") -> RustDevice:
        if register:
            res = await http.post("/v1/accounts", json={"username": username, "password": PASSWORD})
            assert res.status_code == 201, res.text
        dev = await RustDevice.start(server.url, tmp_path / "rust" / f"{username}-{device}.log")
        started.append(dev)
        await dev.login(username, PASSWORD, device)
        return dev

    try:
        yield make
    finally:
        for dev in started:
            with contextlib.suppress(Exception):
                await dev.close()
