"""``Prepared`` statements: the same rows on SQLite's plain cursor as through SQLAlchemy,
inside the caller's transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, bindparam, select

from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.schema import stream
from clearpost.storage.sql.plain import Prepared, plain_sqlite
from clearpost.storage.sql.stream import advance_sync

POS = Prepared(select(stream.c.pos).where(stream.c.id == 1))  # a literal, compiled as a param
AT_LEAST = Prepared(select(stream.c.id).where(stream.c.pos >= bindparam("least")))


async def test_prepared_statements_read_and_write_in_the_transaction(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)

        def step(conn: Connection) -> tuple[bool, int, int, list[int], list[int]]:
            before = int(POS.scalar(conn, {}))
            top = advance_sync(conn, 5)  # a Prepared UPDATE ... RETURNING
            return (
                plain_sqlite(conn) is not None,
                before,
                top,
                [r[0] for r in AT_LEAST.rows(conn, {"least": top})],
                [r[0] for r in AT_LEAST.rows(conn, {"least": top + 1})],
            )

        plain, before, top, hit, miss = await db.run_write(step)
        assert plain == db.dialect.is_sqlite  # SQLite takes the plain path
        assert (before, top, hit, miss) == (0, 5, [1], [])

        def rolled_back(conn: Connection) -> None:
            advance_sync(conn, 100)
            raise RuntimeError("undo")

        with pytest.raises(RuntimeError):
            await db.run_write(rolled_back)
        assert await db.run_read(lambda conn: int(POS.scalar(conn, {}))) == 5
    finally:
        await db.close()


async def test_expanding_parameters_are_refused_on_the_plain_path(tmp_path: object) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/plain.db")
    try:
        await upgrade(db)
        expanding = Prepared(
            select(stream.c.pos).where(stream.c.id.in_(bindparam("ids", expanding=True)))
        )
        with pytest.raises(ValueError, match="expanding"):
            await db.run_read(lambda conn: expanding.rows(conn, {"ids": [1]}))
    finally:
        await db.close()
