"""Telling "the database cannot be reached" apart from every other database error.

A database that is down, restarting or refusing connections is not a bug in Clearpost:
every request that needs it gets ``Unavailable`` (HTTP 503 with ``Retry-After``), and the
outage is logged once when it starts and once when it ends — not as a traceback per
request. ``Database`` (``storage/db.py``) runs every transaction through ``unreachable``
and the ``Outage`` record; anything not classified here stays what it was (a bug is still
a 500 with its traceback).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime

from sqlalchemy import exc as sa_exc

log = logging.getLogger("clearpost.storage")

RETRY_AFTER_SECONDS = 2.0
"""What clients are told to wait before trying again (the HTTP ``Retry-After`` and the
WebSocket close reason). Short: a restart of PostgreSQL takes a second or two."""

# SQLSTATE: class 08 (connection exception) and the shutdown / start-up / too-many states
_PG_STATE_CLASS = "08"
_PG_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# SQLite reports these for a file it cannot open or a lock it did not get within the
# busy timeout (30 s): the database is there but not usable now
_SQLITE_MESSAGES = ("database is locked", "unable to open database file")
_MAX_DEPTH = 6


def unreachable(exc: BaseException) -> bool:
    """True if ``exc`` (or what it wraps) says the database could not be reached or was
    lost mid-transaction, rather than that a statement was wrong."""
    current: BaseException | None = exc
    for _ in range(_MAX_DEPTH):
        if current is None:
            return False
        if _unreachable_one(current):
            return True
        wrapped = getattr(current, "orig", None)
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


def _unreachable_one(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy's dialect recognised a disconnect
    if isinstance(exc, sa_exc.TimeoutError):
        return True  # no pooled connection within the pool timeout
    if isinstance(exc, OSError):
        return True  # refused, reset, timed out, no route (asyncpg raises these raw)
    if isinstance(exc, sqlite3.OperationalError):
        return any(m in str(exc) for m in _SQLITE_MESSAGES)
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and (state.startswith(_PG_STATE_CLASS) or state in _PG_STATES)


def _describe(exc: BaseException) -> str:
    """One short line about the first cause, with no traceback."""
    inner: BaseException = exc
    while isinstance(getattr(inner, "orig", None), BaseException):
        inner = inner.orig  # type: ignore[attr-defined]
    text = str(inner).strip().splitlines()[0] if str(inner).strip() else ""
    return f"{type(inner).__name__}: {text}"[:200] if text else type(inner).__name__


class Outage:
    """Whether the database is reachable, as the last transactions found it.

    ``failed`` logs "database unreachable since ..." on the first failure of an outage and
    ``succeeded`` logs "database reachable again after N s" on the first success after it.
    Each call passes the monotonic time its transaction started, so a transaction that
    began before the change it reports (one that finished just after the database went
    away, or failed just before it came back) cannot make the record flap."""

    def __init__(self) -> None:
        self._down_since: float | None = None  # monotonic
        self._changed_at = 0.0  # monotonic time of the last change

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def seconds_down(self) -> float:
        return 0.0 if self._down_since is None else time.monotonic() - self._down_since

    def failed(self, exc: BaseException, started: float) -> None:
        if self._down_since is not None or started < self._changed_at:
            return
        self._down_since = self._changed_at = time.monotonic()
        since = datetime.now(UTC).isoformat(timespec="seconds")
        log.error(
            "database unreachable since %s (%s); answering 503 with Retry-After until it is back",
            since,
            _describe(exc),
        )

    def succeeded(self, started: float) -> None:
        if self._down_since is None or started < self._changed_at:
            return
        now = time.monotonic()
        took, self._down_since, self._changed_at = now - self._down_since, None, now
        log.warning("database reachable again after %.1f s", took)
