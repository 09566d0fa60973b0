"""Plain DB-API bulk inserts for the two hottest writes (log entries and nodes, messages).

Their rows are flat ints, bytes and strings that need no conversion, and SQLAlchemy's
per-value bind processing for ``conn.execute(table.insert(), rows)`` was a sixth of the
log's append path; for message batches, going around it raised sends at concurrency 64
by about 12%. Driver errors are still raised as
SQLAlchemy's (``IntegrityError`` and so on): ``exec_driver_sql`` wraps them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection


def insert_many(
    conn: Connection, table: str, columns: tuple[str, ...], rows: Sequence[tuple[object, ...]]
) -> None:
    """``INSERT INTO table (columns) VALUES (...)`` once per row, as one ``executemany``."""
    conn.exec_driver_sql(_insert(conn, table, columns), list(rows))


def upsert_many(
    conn: Connection,
    table: str,
    key: tuple[str, ...],
    values: tuple[str, ...],
    rows: Sequence[tuple[object, ...]],
) -> None:
    """``insert_many`` of ``key + values`` rows, replacing the values of a row whose key
    exists (``ON CONFLICT ... DO UPDATE``, in SQLite 3.24+ and PostgreSQL 9.5+)."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in values)
    conflict = f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    conn.exec_driver_sql(f"{_insert(conn, table, key + values)} {conflict}", list(rows))


def _insert(conn: Connection, table: str, columns: tuple[str, ...]) -> str:
    if conn.dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
    else:  # asyncpg: numeric_dollar
        marks = ", ".join(f"${k + 1}" for k in range(len(columns)))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
