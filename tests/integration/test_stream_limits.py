"""The WebSocket stream obeys the per-token rate limit and bounds open streams per device
(issue 15: 5,000 acknowledgements went through in one second; streams were unbounded)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support import api
from tests.support.server import ServerProcess, start_server

MAX_STREAMS_PER_DEVICE = 4  # as in clearpost.server.http.routes.sync


@pytest.fixture
def limited(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    env = {"CLEARPOST_TOKEN_RATE_PER_SECOND": "5", "CLEARPOST_TOKEN_BURST": "20"}
    proc = start_server(tmp_path / "srv", db_url, env)
    try:
        yield proc
    finally:
        proc.stop()


async def test_acknowledgements_are_rate_limited(limited: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=limited.url, timeout=30) as client:
        bob = await api.user(client, "bob")
    url = limited.url.replace("http://", "ws://") + "/v1/stream"
    async with websockets.connect(url, additional_headers=bob.headers) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
        sent = 0
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            for _ in range(5000):
                await ws.send(json.dumps({"ack": hello["cursor"]}))
                sent += 1
                await asyncio.sleep(0)
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4429, "rate_limited")


async def test_open_streams_per_device_are_bounded(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bob = await api.user(client, "bob")
        other = await api.login(client, "bob")
    url = server.url.replace("http://", "ws://") + "/v1/stream"
    opened = [
        await websockets.connect(url, additional_headers=bob.headers)
        for _ in range(MAX_STREAMS_PER_DEVICE)
    ]
    try:
        for ws in opened:
            await asyncio.wait_for(ws.recv(), 10)
        async with websockets.connect(url, additional_headers=bob.headers) as extra:
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.reason == "too_many_streams"
        async with websockets.connect(url, additional_headers=other.headers) as mine:
            await asyncio.wait_for(mine.recv(), 10)  # another device has its own streams
    finally:
        for ws in opened:
            await ws.close()
    async with websockets.connect(url, additional_headers=bob.headers) as again:
        await asyncio.wait_for(again.recv(), 10)  # closed streams free their places
