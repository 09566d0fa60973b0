"""Every row of every table, as one comparable value.

A test takes a snapshot before and after a request that must fail and asserts the two are
equal: that is how "a refused request writes nothing" is checked without knowing which
tables a handler might touch. The tables are reflected from the live database, not taken
from ``clearpost.storage.schema``, so a table added by a later migration is covered too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, MetaData, inspect, select

from clearpost.storage.db import Database

Snapshot = dict[str, list[tuple[Any, ...]]]
"""Table name -> its rows as tuples, in a stable (sorted) order."""

__all__ = ["Snapshot", "changes", "snapshot"]


_reflected: dict[tuple[str, tuple[str, ...]], MetaData] = {}


def _tables(conn: Connection) -> MetaData:
    """The reflected tables, reused while the set of table names stays the same
    (reflection costs far more than reading a test database's rows)."""
    names = tuple(sorted(inspect(conn).get_table_names()))
    key = (str(conn.engine.url), names)
    if key not in _reflected:
        metadata = MetaData()
        metadata.reflect(conn, only=list(names))
        _reflected[key] = metadata
    return _reflected[key]


def _read_all(conn: Connection) -> Snapshot:
    metadata = _tables(conn)
    out: Snapshot = {}
    for name in sorted(metadata.tables):
        rows = conn.execute(select(metadata.tables[name])).all()
        # repr() orders rows that mix None with values, which tuples alone cannot.
        out[name] = sorted((tuple(row) for row in rows), key=repr)
    return out


async def snapshot(db: Database) -> Snapshot:
    """Read every table of ``db`` in one read transaction."""
    async with db.read() as conn:
        return await conn.run_sync(_read_all)


def changes(before: Snapshot, after: Snapshot) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """What differs between two snapshots, per table: rows ``added`` and rows ``removed``.

    Empty when nothing changed; meant for assertion messages."""
    out: dict[str, dict[str, list[tuple[Any, ...]]]] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name, []), after.get(name, [])
        added = [r for r in new if r not in old]
        removed = [r for r in old if r not in new]
        if added or removed or len(old) != len(new):
            out[name] = {"added": added, "removed": removed}
    return out
