"""Migrations 0007 (the sync index) and 0008 (sequencer terms) go down and up again, and an
existing log's checkpoints survive 0008 (written before terms, they have none)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, inspect, text

from clearpost.storage.db import Database
from clearpost.storage.migrations import (
    alembic_config,
    current_revision,
    head_revision,
    upgrade,
)


def _shape(conn: Connection) -> dict[str, Any]:
    insp = inspect(conn)
    return {
        "tables": sorted(insp.get_table_names()),
        "message indexes": sorted(i["name"] for i in insp.get_indexes("messages")),
        "checkpoint columns": [c["name"] for c in insp.get_columns("tlog_checkpoints")],
    }


async def _alembic(db: Database, command: str, revision: str) -> None:
    def run(conn: Connection) -> None:
        from alembic import command as commands

        getattr(commands, command)(alembic_config(conn), revision)

    async with db.engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


async def test_down_to_0006_and_up_again(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db, "0006")
        async with db.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tlog_checkpoints (size, root, note, created_at)"
                    " VALUES (1, :r, 'n', 0)"
                ),
                {"r": b"r" * 32},
            )
        await upgrade(db)
        async with db.engine.connect() as conn:
            head = await conn.run_sync(_shape)
            rows = (await conn.execute(text("SELECT size, term FROM tlog_checkpoints"))).all()
            role = (await conn.execute(text("SELECT id, term FROM tlog_sequencer"))).all()
        assert "ix_messages_conv_pos" in head["message indexes"]
        assert {"tlog_sequencer", "tlog_sequencer_terms"} <= set(head["tables"])
        assert "term" in head["checkpoint columns"]
        assert [tuple(r) for r in rows] == [(1, None)]
        assert [tuple(r) for r in role] == [(1, 0)]

        await _alembic(db, "downgrade", "0006")
        async with db.engine.connect() as conn:
            down = await conn.run_sync(_shape)
            rows = (await conn.execute(text("SELECT size FROM tlog_checkpoints"))).all()
        assert "ix_messages_conv_pos" not in down["message indexes"]
        assert not {"tlog_sequencer", "tlog_sequencer_terms"} & set(down["tables"])
        assert "term" not in down["checkpoint columns"]
        assert [tuple(r) for r in rows] == [(1,)]

        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_shape) == head
        assert await current_revision(db) == head_revision()
    finally:
        await db.close()
