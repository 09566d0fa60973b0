"""A database that cannot be reached is ``Unavailable`` (logged once), not a bug.

Real databases only: an SQLite file that cannot be opened, a PostgreSQL port nobody
listens on, and a private PostgreSQL server stopped and started again (never the shared
one). A wrong statement must stay what it was: a bug, not a 503.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from clearpost.core.errors import Unavailable
from clearpost.storage.db import Database
from clearpost.storage.faults import unreachable
from tests.support import pg
from tests.support.server import free_port

DOWN = "database unreachable since"
UP = "database reachable again after"


@pytest.fixture
def private_pg() -> Iterator[pg.PrivatePostgres]:
    server = pg.create_or_skip()
    try:
        yield server
    finally:
        server.destroy()


def _messages(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(start)]


async def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'clearpost.db'}")
    caplog.set_level(logging.WARNING, logger="clearpost.storage")
    try:
        for _ in range(3):
            with pytest.raises(Unavailable) as caught:
                await db.ping()
            assert caught.value.code == "database_unavailable" and caught.value.retry_after > 0
        with pytest.raises(Unavailable):
            await db.run_write(lambda conn: conn.execute(text("SELECT 1")))
        with pytest.raises(Unavailable):
            async with db.read() as conn:
                await conn.execute(text("SELECT 1"))
        assert len(_messages(caplog, DOWN)) == 1 and db.outage.down
    finally:
        await db.close()
        await _failed_connects_stopped()


async def _failed_connects_stopped() -> None:
    """aiosqlite stops the worker thread of a connection that failed to open without
    waiting for it, and the thread then reports to the event loop: if the test's loop has
    closed by then, the thread's error surfaces as a warning in a later test. Let those
    threads finish while the loop runs."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)


async def test_a_refused_postgres_connection_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")
    caplog.set_level(logging.WARNING, logger="clearpost.storage")
    try:
        for _ in range(5):
            with pytest.raises(Unavailable):
                await db.ping()
        with pytest.raises(Unavailable):
            async with db.write() as conn:
                await conn.execute(text("SELECT 1"))
        down = _messages(caplog, DOWN)
        assert len(down) == 1 and "ConnectionRefusedError" in down[0]
    finally:
        await db.close()


async def test_a_wrong_statement_is_still_a_bug(db_url: str) -> None:
    db = Database(db_url)
    try:
        await db.ping()
        with pytest.raises(DBAPIError) as caught:
            await db.run_read(lambda conn: conn.execute(text("SELECT * FROM no_such_table")))
        assert not isinstance(caught.value, Unavailable) and not db.outage.down
        await db.ping()  # and the database is still fine
    finally:
        await db.close()


def test_sqlite_lock_timeouts_count_as_unavailable_other_sqlite_errors_do_not() -> None:
    assert unreachable(sqlite3.OperationalError("database is locked"))
    assert unreachable(sqlite3.OperationalError("unable to open database file"))
    assert not unreachable(sqlite3.OperationalError("no such table: messages"))
    assert not unreachable(ValueError("not a database error"))


@pytest.mark.postgres
async def test_a_postgres_restart_is_logged_once_down_and_once_up(
    private_pg: pg.PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(private_pg.url())
    caplog.set_level(logging.WARNING, logger="clearpost.storage")
    try:
        await db.ping()
        private_pg.stop("immediate")
        for _ in range(10):  # the pooled connection is found dead, then connects are refused
            with pytest.raises(Unavailable):
                await db.ping()
        assert db.outage.down
        private_pg.start()
        for _ in range(5):
            await db.ping()
        assert not db.outage.down
        assert len(_messages(caplog, DOWN)) == 1
        assert len(_messages(caplog, UP)) == 1
    finally:
        await db.close()
