"""Reads behind the C2SP tlog-tiles endpoints: stored tiles, entry ranges, the log's size.

A separate module from ``tlog.py`` (whose writes the sequencer owns): these are plain
reads, run for a whole batch of tile requests in one read transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter

from sqlalchemy import Connection, select

from clearpost.core.tlog.tiles import TileId
from clearpost.storage.schema import tlog_entries
from clearpost.storage.sql import tlog as log_fns
from clearpost.storage.sql.plain import plain_sqlite

_SQLITE_ENTRIES = "SELECT body FROM tlog_entries WHERE idx >= ? AND idx < ? ORDER BY idx"
_SQLITE_LATEST = "SELECT max(size) FROM tlog_checkpoints"


def read_tiles(conn: Connection, wanted: Sequence[TileId]) -> dict[TileId, bytes]:
    """The stored tiles among ``wanted`` (a tile not stored yet is left out)."""
    return log_fns._tiles(conn, list(wanted))  # the one tile reader


def latest_size(conn: Connection) -> int:
    """The size of the latest signed checkpoint (0 before the first)."""
    raw = plain_sqlite(conn)
    if raw is not None:  # a third of a batch's reads through SQLAlchemy's statement
        (size,) = raw.execute(_SQLITE_LATEST).fetchone()
        return int(size or 0)
    latest = log_fns.latest_sync(conn)
    return latest.size if latest else 0


def read_entries(conn: Connection, start: int, end: int) -> list[bytes]:
    """The stored bodies of entries ``[start, end)``, in order (a missing one is skipped)."""
    raw = plain_sqlite(conn)
    if raw is not None:  # sqlite3 gives a BLOB as bytes; all rows in one call, no Python step each
        return list(map(_FIRST, raw.execute(_SQLITE_ENTRIES, (start, end)).fetchall()))
    rows = conn.execute(
        select(tlog_entries.c.body)
        .where(tlog_entries.c.idx >= start, tlog_entries.c.idx < end)
        .order_by(tlog_entries.c.idx)
    )
    return [bytes(r[0]) for r in rows]


_FIRST = itemgetter(0)
