"""Shared fixtures: databases (SQLite file and a fresh PostgreSQL database), the app
in-process, and a real ``clearpost serve`` process."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from clearpost.server.config import Settings
from clearpost.server.http.app import create_app
from tests.support.server import ServerProcess, start_server

PG_ADMIN = os.environ.get("CLEARPOST_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

FAST_SETTINGS = dict(
    argon2_time_cost=1,
    argon2_memory_kib=8192,
    login_rate_per_minute=0.0,
    token_rate_per_second=0.0,
    keydir_log_seconds=0,  # entries about people counted at every epoch, not once a minute
)


async def _pg_available() -> bool:
    try:
        conn = await asyncpg.connect(PG_ADMIN, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return asyncio.run(_pg_available())


def _skip_or_fail_pg(pg_available: bool) -> None:
    if not pg_available:
        if IN_CI:
            pytest.fail(
                f"PostgreSQL at {PG_ADMIN} is not reachable and CI=true: PostgreSQL tests must run"
            )
        pytest.skip("PostgreSQL is not reachable")


async def create_pg_db() -> str:
    name = "cp_test_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_db(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    _skip_or_fail_pg(pg_available)
    name = asyncio.run(create_pg_db())
    yield pg_url_of(name)
    asyncio.run(drop_pg_db(name))


def pg_url_of(name: str) -> str:
    """The SQLAlchemy URL of test database ``name`` on the test server."""
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'clearpost.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def fast_settings(tmp_path: Path, database: str | None = None, **overrides: object) -> Settings:
    values: dict[str, object] = {
        **FAST_SETTINGS,
        "data_dir": tmp_path / "data",
        "database": database,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process on SQLite, through its lifespan."""
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[ServerProcess]:
    """A real ``clearpost serve`` process on SQLite and on PostgreSQL."""
    proc = start_server(tmp_path / "srv", db_url)
    try:
        yield proc
    finally:
        proc.stop()
