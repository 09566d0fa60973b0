"""Fixtures for the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import api, partner
from tests.support.partner import World


@pytest.fixture
async def world(app_client: httpx.AsyncClient) -> AsyncIterator[World]:
    services = app_client.app.state.services  # type: ignore[attr-defined]
    version, secret = await services.partners.register(partner.AGREEMENT)
    await api.user(app_client, "alice")
    yield World(app_client, version.partner_id, secret, app_client._transport)  # type: ignore[attr-defined]
