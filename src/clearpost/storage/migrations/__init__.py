"""Alembic migrations, applied on server start and by ``clearpost db upgrade``.

Start-up checks the recorded revision against the newest migration file first and imports
Alembic only when there is something to apply (importing it costs about 0.1 s). An empty
database is not migrated step by step: it is created from ``schema.py`` and stamped with
the newest revision (0.06 s instead of 0.27 s on the 2-core machine; every in-process test
and every first start pays this). A contract test keeps both ways identical.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import DBAPIError

from clearpost.core.errors import ClearpostError
from clearpost.storage.db import Database
from clearpost.storage.schema import create_fresh

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
_REVISION = re.compile(r'^revision = "([^"]+)"$', re.M)
_DOWN = re.compile(r'^down_revision = (?:"([^"]+)"|None)$', re.M)


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _revisions() -> tuple[set[str], set[str]]:
    """(every revision, every revision some migration revises), read from the files."""
    revisions, revised = set(), set()
    for path in (HERE / "versions").glob("*.py"):
        source = path.read_text()
        if (rev := _REVISION.search(source)) is not None:
            revisions.add(rev.group(1))
            down = _DOWN.search(source)
            if down is not None and down.group(1):
                revised.add(down.group(1))
    return revisions, revised


def head_revision() -> str:
    """The newest migration (the one no other migration revises)."""
    revisions, revised = _revisions()
    (head,) = revisions - revised
    return head


class SchemaTooNew(ClearpostError):
    """The database was migrated by a newer Clearpost than this one."""

    code = "schema_too_new"


async def current_revision(db: Database) -> str | None:
    async with db.engine.connect() as conn:
        try:
            row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
        except DBAPIError:  # no schema yet
            return None
        return str(row[0]) if row else None


async def upgrade(db: Database, revision: str = "head", *, step_by_step: bool = False) -> None:
    """Bring the schema to ``revision``. Safe to run on every start. An empty database
    is created at the head revision directly, unless ``step_by_step`` (the tests compare
    the two)."""
    if revision == "head":
        current, head = await current_revision(db), head_revision()
        if current == head:
            return
        if current is not None and current not in _revisions()[0]:
            raise SchemaTooNew(
                f"the database's schema is at revision {current}, which this Clearpost does"
                f" not know (its newest is {head}): a newer Clearpost upgraded it; run that"
                " version, or restore the backup taken before the upgrade"
            )
        if current is None and not step_by_step and not await _has_tables(db):
            async with db.engine.begin() as conn:
                await conn.run_sync(create_fresh, head)
            return

    def _run(sync_conn: Connection) -> None:
        from alembic import command

        command.upgrade(alembic_config(sync_conn), revision)

    async with db.engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()


async def _has_tables(db: Database) -> bool:
    """Whether the database holds any table at all (a half-made schema is not "empty")."""

    def check(sync_conn: Connection) -> bool:
        return bool(inspect(sync_conn).get_table_names())

    async with db.engine.connect() as conn:
        return await conn.run_sync(check)
