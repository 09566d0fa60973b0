"""Hot statements on SQLite's plain sqlite3 connection, compiled by SQLAlchemy once.

Inside ``Database.run_write`` and ``run_read`` on SQLite, a statement executed through
SQLAlchemy's ``Connection.execute`` pays for cache-key generation, event dispatch and
result wrapping on every call: on the message-batch write that was about a fifth of the
writer thread's time at 64 concurrent senders. ``Prepared`` compiles a Core statement once
for SQLite and runs the SQL text on the sqlite3 cursor of the same connection (so in the
same transaction); on PostgreSQL, and through aiosqlite, it is plain ``conn.execute``.
Only for statements whose parameters and results need no type processing (ints, strings,
bytes): nothing converts them on the plain path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import Compiled


def plain_sqlite(conn: Connection) -> sqlite3.Connection | None:
    """The sqlite3 connection under ``conn`` (``Database.run_read`` and ``run_write`` on
    SQLite), or None (PostgreSQL, or SQLite through aiosqlite)."""
    raw = conn.connection.driver_connection
    return raw if isinstance(raw, sqlite3.Connection) else None


class Prepared:
    """A Core statement (no expanding ``IN``), run as compiled SQL text on SQLite."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: tuple[str, list[str], dict[str, Any]] | None = None

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        raw = plain_sqlite(conn)
        if raw is None:
            return conn.execute(self.statement, dict(params)).all()
        if self._compiled is None:
            statement = cast(ClauseElement, self.statement)
            self._compiled = _compile(statement.compile(dialect=conn.dialect))
        sql, order, fixed = self._compiled
        return raw.execute(sql, [params[k] if k in params else fixed[k] for k in order]).fetchall()

    def scalar(self, conn: Connection, params: Mapping[str, Any]) -> Any:
        """The first column of the one row the statement returns."""
        (row,) = self.rows(conn, params)
        return row[0]


def _compile(compiled: Compiled) -> tuple[str, list[str], dict[str, Any]]:
    order = list(getattr(compiled, "positiontup", None) or [])
    if any("POSTCOMPILE" in name for name in order) or "POSTCOMPILE" in str(compiled):
        raise ValueError("Prepared statements cannot have expanding parameters")
    return str(compiled), order, dict(compiled.params)
