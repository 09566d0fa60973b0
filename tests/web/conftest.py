"""Fixtures of the web app's browser tests: a real ``clearpost serve`` (SQLite) and an HTTP
client to it. Without Chromium, Playwright or the built app they skip (fail under CI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, start_server
from tests.web.browser import need_browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    need_browser()
    proc = start_server(
        tmp_path / "srv",
        f"sqlite+aiosqlite:///{tmp_path / 'srv' / 'cp.db'}",
        # entries about people counted at most every second, as a person would wait for it
        extra_env={"CLEARPOST_KEYDIR_LOG_SECONDS": "1"},
    )
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def http(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client
