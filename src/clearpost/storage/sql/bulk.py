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
    if conn.dialect.paramstyle == "qmark":
        marks = ", ".join("?" for _ in columns)
    else:  # asyncpg: numeric_dollar
        marks = ", ".join(f"${k + 1}" for k in range(len(columns)))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    conn.exec_driver_sql(sql, list(rows))
