"""An empty database created from ``schema.py`` equals one built by every migration in turn.

Start-up creates an empty database from the live table definitions (``create_fresh``)
instead of replaying the migrations; this test is what keeps ``schema.py`` and the frozen
migrations from drifting apart, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Connection, inspect

from clearpost.storage.db import Database
from clearpost.storage.migrations import current_revision, head_revision, upgrade
from tests.conftest import create_pg_db, drop_pg_db, pg_url_of
from tests.support.snapshot import snapshot


def _describe(conn: Connection) -> dict[str, Any]:
    """Tables with their columns, keys, indexes and constraints, in a comparable form."""
    insp = inspect(conn)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                for c in insp.get_columns(table)
            ],
            "primary key": insp.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "foreign keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in insp.get_foreign_keys(table)
            ),
        }
    return out


async def _built(url: str, *, step_by_step: bool) -> tuple[dict[str, Any], Any, str | None]:
    db = Database(url)
    try:
        await upgrade(db, step_by_step=step_by_step)
        async with db.read() as conn:
            described = await conn.run_sync(_describe)
        return described, await snapshot(db), await current_revision(db)
    finally:
        await db.close()


@pytest.fixture
def second_db_url(db_url: str, tmp_path: Any, request: pytest.FixtureRequest) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite+aiosqlite:///{tmp_path / 'second.db'}"
    name = asyncio.run(create_pg_db())
    request.addfinalizer(lambda: asyncio.run(drop_pg_db(name)))
    return pg_url_of(name)


async def test_fresh_schema_equals_every_migration_applied(db_url: str, second_db_url: str) -> None:
    migrated, migrated_rows, migrated_rev = await _built(db_url, step_by_step=True)
    fresh, fresh_rows, fresh_rev = await _built(second_db_url, step_by_step=False)
    assert migrated_rev == fresh_rev == head_revision()
    assert set(fresh) == set(migrated)
    for table in migrated:
        assert fresh[table] == migrated[table], table
    assert fresh_rows == migrated_rows  # the first rows of stream and tlog_state, and the stamp
    assert migrated_rows["stream"] and migrated_rows["tlog_state"]


async def test_a_fresh_database_is_at_head_and_upgrades_again_as_a_no_op(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        before = await snapshot(db)
        await upgrade(db)
        assert await snapshot(db) == before
        assert await current_revision(db) == head_revision()
    finally:
        await db.close()
