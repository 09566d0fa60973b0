"""Issue 16 against real ``clearpost serve`` processes: the server name is fixed when a
deployment is created, an old database with accounts is refused with what to do, and a
browser can authenticate the stream with a WebSocket subprotocol (never the URL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import websockets
from sqlalchemy import text

from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from tests.support import api
from tests.support.server import FAST_ENV, ServerProcess, free_port, start_server


def _serve(data_dir: Path, database: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A ``clearpost serve`` that is expected to refuse to start."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "clearpost",
            "serve",
            "--port",
            str(free_port()),
            "--data-dir",
            str(data_dir),
            "--database",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **FAST_ENV, **env},
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("Clearpost on ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


async def test_the_server_name_is_kept_and_another_is_refused(tmp_path: Path, db_url: str) -> None:
    first = start_server(tmp_path / "srv", db_url, {"CLEARPOST_SERVER_NAME": "chat.example.org"})
    try:
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as client:
            assert await api.register(client, "alice") == "@alice:chat.example.org"
    finally:
        first.stop()
    done = _serve(tmp_path / "srv", db_url, {"CLEARPOST_SERVER_NAME": "other.example.org"})
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "'chat.example.org'" in line and "'other.example.org'" in line
    # the same name again starts, and the account is still there
    again = start_server(tmp_path / "srv", db_url, {"CLEARPOST_SERVER_NAME": "chat.example.org"})
    try:
        async with httpx.AsyncClient(base_url=again.url, timeout=30) as client:
            alice = await api.login(client, "alice", keys=False)
            assert alice.user_id == "@alice:chat.example.org"
    finally:
        again.stop()


def test_a_server_name_that_is_not_one_is_a_setting_error(tmp_path: Path) -> None:
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    done = _serve(tmp_path / "d", sqlite, {"CLEARPOST_SERVER_NAME": "not a host/name"})
    assert done.returncode == 2
    assert "'server_name'" in _one_error_line(done)


async def test_a_database_with_accounts_from_before_server_names_is_refused(
    tmp_path: Path, db_url: str
) -> None:
    db = Database(db_url)
    try:
        await upgrade(db, "0011")
        async with db.write() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (user_id, password_hash, created_at) VALUES ('@old', 'h', 0)"
                )
            )
    finally:
        await db.close()
    done = _serve(tmp_path / "d", db_url, {})
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "before Clearpost 0.3" in line and "new database" in line
    db = Database(db_url)  # nothing was changed: still 0011, the account as it was
    try:
        async with db.read() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).one()
            users = (await conn.execute(text("SELECT user_id FROM users"))).all()
        assert version[0] == "0011" and [u[0] for u in users] == ["@old"]
    finally:
        await db.close()


async def test_a_browser_authenticates_the_stream_with_a_subprotocol(
    server: ServerProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bob = await api.user(client, "bob")
    url = server.url.replace("http://", "ws://") + "/v1/stream"
    offered = ["clearpost.v1", f"clearpost.bearer.{bob.access_token}"]
    async with websockets.connect(url, subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "clearpost.v1"
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert first["to_device"] == {"events": []} and "cursor" in first
    # the Authorization header still works, with or without the subprotocol
    async with websockets.connect(url, additional_headers=bob.headers) as ws:
        assert ws.subprotocol is None
        await asyncio.wait_for(ws.recv(), 10)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("nothing", "missing_token"),
        ("url", "missing_token"),  # a token in the URL is never read
        ("bearer-without-v1", "missing_token"),
        ("unknown-token", "invalid_token"),
    ],
)
async def test_a_stream_without_a_good_token_is_closed_with_4401(
    server: ServerProcess, how: str, reason: str
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        bob = await api.user(client, "bob", keys=False)
    url = server.url.replace("http://", "ws://") + "/v1/stream"
    protocols = {
        "nothing": ["clearpost.v1"],
        "url": ["clearpost.v1"],
        "bearer-without-v1": [f"clearpost.bearer.{bob.access_token}"],
        "unknown-token": ["clearpost.v1", "clearpost.bearer.cpt_unknown"],
    }[how]
    if how == "url":
        url += f"?access_token={bob.access_token}"
    try:
        ws = await websockets.connect(url, subprotocols=protocols)  # type: ignore[arg-type]
    except websockets.exceptions.NegotiationError:
        assert how == "bearer-without-v1"  # nothing the client offered was accepted
        return
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, reason)
