"""SDK clients against a real ``clearpost serve`` process (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from clearpost.client import Client, KdfParams
from tests.support.server import ServerProcess

PASSWORD = "correct horse battery"
FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
"""Cheap argon2id for test stores; real stores use the RFC 9106 default."""


def secret_text(label: str) -> str:
    """A plaintext that cannot appear anywhere by accident."""
    return f"{label}-plaintext-{secrets.token_hex(8)}"


class People:
    """Registers users and logs in devices, each with its own store; closes them all."""

    def __init__(self, http: httpx.AsyncClient, root: Path) -> None:
        self.http, self.root = http, root
        self.clients: list[Client] = []

    def store_path(self, name: str) -> Path:
        return self.root / f"{name}.store"

    async def register(self, username: str) -> Client:
        client = await Client.register(
            self.http,
            username,
            PASSWORD,
            store_path=self.store_path(username),
            passphrase=f"{username} passphrase",
            kdf=FAST_KDF,
            stream=False,
        )
        self.clients.append(client)
        return client

    async def new_device(self, username: str, device: str) -> Client:
        client = await Client.login(
            self.http,
            username,
            PASSWORD,
            store_path=self.store_path(f"{username}-{device}"),
            passphrase=f"{username} passphrase",
            device_name=device,
            kdf=FAST_KDF,
            stream=False,
        )
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):  # already closed by the test
                await client.close()


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


async def raw_database_text(db_url: str) -> bytes:
    """Everything the server database holds, as bytes: the SQLite files byte for byte, or
    every text, JSON and bytea column of every table on PostgreSQL."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        parts = [
            p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
        ]
        return b"".join(parts)
    dsn = db_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'bytea', 'json', 'jsonb', 'character')"
        )
        assert columns, "no text columns found: the dump would prove nothing"
        out = bytearray()
        for col in columns:
            rows = await conn.fetch(
                f'SELECT "{col["column_name"]}"::text AS v FROM "{col["table_name"]}"'
                if col["data_type"] != "bytea"
                else f'SELECT "{col["column_name"]}" AS v FROM "{col["table_name"]}"'
            )
            for row in rows:
                value = row["v"]
                if value is not None:
                    out += value if isinstance(value, bytes) else value.encode()
                    out += b"\n"
        return bytes(out)
    finally:
        await conn.close()


async def assert_no_plaintext(
    server: ServerProcess, db_url: str, plaintexts: list[str], stores: list[Path] | None = None
) -> None:
    """None of ``plaintexts`` is in the server's database, its log, or (sealed) device stores."""
    assert plaintexts
    raw = await raw_database_text(db_url)
    assert len(raw) > 1000, "the database dump is suspiciously small"
    log = server.log()
    for text in plaintexts:
        assert text.encode() not in raw, f"plaintext {text!r} found in the server database"
        assert text not in log, f"plaintext {text!r} found in the server log"
        for store in stores or []:
            data = b"".join(p.read_bytes() for p in store.parent.glob(store.name + "*"))
            assert text.encode() not in data, f"plaintext {text!r} found unsealed in {store.name}"
