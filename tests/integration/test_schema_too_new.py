"""A database upgraded by a newer Clearpost: the older server and ``clearpost db upgrade``
say so in one line, change nothing, and exit 1 (not an Alembic traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from clearpost.storage.db import Database
from clearpost.storage.migrations import head_revision, upgrade
from tests.integration.test_server_name_and_stream_auth import _one_error_line, _serve
from tests.support.server import FAST_ENV


async def _from_the_future(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        async with db.write() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await db.close()


async def _revision(db_url: str) -> str:
    db = Database(db_url)
    try:
        async with db.read() as conn:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).one()
        return str(row[0])
    finally:
        await db.close()


def _db_upgrade(db_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clearpost", "db", "upgrade", "--database", db_url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **FAST_ENV},
        cwd=cwd,
    )


async def test_a_newer_schema_is_refused_in_one_line(tmp_path: Path, db_url: str) -> None:
    await _from_the_future(db_url)
    done = _serve(tmp_path / "d", db_url, {})
    assert done.returncode == 1
    line = _one_error_line(done)
    assert "revision 9999" in line and f"newest is {head_revision()}" in line
    assert "newer Clearpost" in line
    upgraded = _db_upgrade(db_url, tmp_path)
    assert upgraded.returncode == 1, upgraded.stderr
    assert "Traceback" not in upgraded.stdout + upgraded.stderr
    assert "revision 9999" in upgraded.stdout + upgraded.stderr
    assert await _revision(db_url) == "9999"  # nothing was touched
