"""``clearpost backup`` / ``restore``: a copy taken while the server writes, restored into a
new data dir, serves the same log under the same key and audits clean."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from clearpost.cli.main import app
from tests.support import api
from tests.support.server import start_server

pytestmark = pytest.mark.slow


async def _users(url: str, names: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for name in names:
            await api.user(http, name)


async def _log_key(url: str) -> object:
    async with httpx.AsyncClient(base_url=url) as http:
        return (await http.get("/v1/log/key")).json()


async def _audit(url: str, state: Path) -> tuple[int, str]:
    """The auditor CLI (it runs its own event loop, so on a thread of its own here)."""
    args = ["audit", "verify", "--server", url, "--state", str(state)]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    return result.exit_code, result.output


async def test_backup_while_serving_restores_and_audits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, f"sqlite+aiosqlite:///{data / 'clearpost.db'}")
    runner = CliRunner()
    try:
        await _users(server.url, [f"user{i}" for i in range(4)])
        # The copy runs while more devices publish keys (log entries) on the live server.
        writes = asyncio.create_task(_users(server.url, [f"late{i}" for i in range(6)]))
        backup = await asyncio.to_thread(
            runner.invoke, app, ["backup", str(tmp_path / "bk"), "--data-dir", str(data)]
        )
        await writes
        assert backup.exit_code == 0, backup.output
        assert "log of" in backup.output
        original_key = await _log_key(server.url)
    finally:
        server.stop()

    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"clearpost.db", "log.key", "report.key"}
    assert manifest["log_size"] >= 4  # the first four devices at least
    assert (tmp_path / "bk" / "log.key").stat().st_mode & 0o077 == 0

    restored = tmp_path / "restored"
    result = runner.invoke(app, ["restore", str(tmp_path / "bk"), "--data-dir", str(restored)])
    assert result.exit_code == 0, result.output
    again = start_server(restored, f"sqlite+aiosqlite:///{restored / 'clearpost.db'}")
    try:
        assert await _log_key(again.url) == original_key
        code, output = await _audit(again.url, tmp_path / "audit.json")
        assert code == 0, output
        assert "OK log" in output
        # The restored server goes on: a new device is logged and the log still audits.
        await _users(again.url, ["after"])
        code, output = await _audit(again.url, tmp_path / "audit.json")
        assert code == 0, output
    finally:
        again.stop()


def test_restore_refuses_damage_and_overwrites(tmp_path: Path) -> None:
    data = tmp_path / "data"
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    for name in ("log.key", "report.key"):
        (data / name).write_text("not a real key, but a file to carry\n")
    result = runner.invoke(app, ["backup", str(tmp_path / "bk"), "--data-dir", str(data)])
    assert result.exit_code == 0, result.output

    result = runner.invoke(app, ["backup", str(tmp_path / "bk"), "--data-dir", str(data)])
    assert result.exit_code == 1 and "not empty" in result.output

    result = runner.invoke(app, ["restore", str(tmp_path / "bk"), "--data-dir", str(data)])
    assert result.exit_code == 1 and "already exists" in result.output

    key = tmp_path / "bk" / "report.key"
    key.write_text(key.read_text() + "x")
    result = runner.invoke(
        app, ["restore", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "n")]
    )
    assert result.exit_code == 1 and "report.key does not match its checksum" in result.output
    assert not (tmp_path / "n" / "clearpost.db").exists()  # nothing half-restored

    result = runner.invoke(app, ["restore", str(tmp_path), "--data-dir", str(tmp_path / "n")])
    assert result.exit_code == 1 and "is not a Clearpost backup" in result.output
