"""Fixtures for the audit unit tests: a fake log, and clients connected to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from clearpost.audit import LogClient

from .fakelog import FakeLog


@pytest.fixture
def fake_log() -> FakeLog:
    return FakeLog()


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[FakeLog], LogClient]]:
    clients: list[LogClient] = []

    def make(log: FakeLog) -> LogClient:
        client = log.client()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.http.aclose()
