"""Engines and transactions.

``Database.read()`` / ``write()`` give an async read / write transaction;
``run_read(fn)`` / ``run_write(fn)`` run a plain function in one. On SQLite the async
path goes through aiosqlite (a thread hop per statement), while ``run_*`` run the whole
function on a reader thread or the one writer thread with the plain sqlite3 driver (one
hop per transaction) — the hot paths use those. Writes of both kinds are serialised by an
in-process lock and start with ``BEGIN IMMEDIATE``, so writers queue instead of failing
with "database is locked". The file runs in WAL mode with ``synchronous=NORMAL``, which
keeps every committed transaction across a crash of the server process. On PostgreSQL
everything uses one asyncpg pool.

Every transaction of all four kinds passes through one fault check: an error that means
the database cannot be reached (``storage/faults.py``) becomes ``Unavailable`` and is
recorded in ``Database.outage``, which logs the outage once when it starts and once when
it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from clearpost.core.errors import ClearpostError, Unavailable
from clearpost.storage.faults import RETRY_AFTER_SECONDS, Outage, unreachable

T = TypeVar("T")
READ_THREADS = 4
PG_CONNECT_TIMEOUT = 10  # seconds; asyncpg's own default is 60 (a request would hang that long)


@dataclass(frozen=True, slots=True)
class Dialect:
    is_sqlite: bool

    @property
    def is_postgres(self) -> bool:
        return not self.is_sqlite


def _sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=1 if writer else 4,
        max_overflow=0,
        pool_timeout=60,
        connect_args={"timeout": 30},
    )
    _sqlite_events(engine.sync_engine, writer=writer)
    return engine


def _sqlite_sync_engine(url: str, *, writer: bool) -> Engine:
    """A plain (thread-side) SQLite engine for ``Database.run_read`` / ``run_write``."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        pool_size=1 if writer else READ_THREADS,
        max_overflow=0,
        connect_args={"timeout": 30, "check_same_thread": False},
    )
    _sqlite_events(engine, writer=writer)
    return engine


def _sqlite_events(engine: Engine, *, writer: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


def _private_file(path: str | None) -> None:
    """Create the SQLite file readable by its owner only, and tighten an existing one: it
    holds the commitment salts, the pairwise-id key and the password hashes (issue 15: it
    was created world-readable). SQLite gives its -wal and -shm files the same mode."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):  # no directory: SQLite says so
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(name, 0o600)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = Dialect(is_sqlite=parsed.get_backend_name() == "sqlite")
        self._sync_reader: Engine | None = None
        self._read_threads: ThreadPoolExecutor | None = None
        self._sync_writer: Engine | None = None
        self._write_thread: ThreadPoolExecutor | None = None
        self._writer_conn: Connection | None = None  # used on the writer thread only
        self._reader_local = threading.local()  # each reader thread's own connection
        self._reader_conns: list[Connection] = []
        self._write_lock: asyncio.Lock | contextlib.nullcontext[None] = contextlib.nullcontext()
        if self.dialect.is_sqlite:
            _private_file(parsed.database)
            self._reader = _sqlite_engine(url, writer=False)
            self._writer = _sqlite_engine(url, writer=True)
            self._sync_reader = _sqlite_sync_engine(url, writer=False)
            self._read_threads = ThreadPoolExecutor(
                READ_THREADS, thread_name_prefix="clearpost-read"
            )
            self._sync_writer = _sqlite_sync_engine(url, writer=True)
            self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="clearpost-write")
            self._write_lock = asyncio.Lock()
        else:
            self._reader = create_async_engine(
                url,
                pool_size=10,
                max_overflow=10,
                connect_args={"timeout": PG_CONNECT_TIMEOUT},
            )
            self._writer = self._reader
        self.outage = Outage()

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file (None on PostgreSQL or for an in-memory database)."""
        name = make_url(self.url).database if self.dialect.is_sqlite else None
        return Path(name) if name and name != ":memory:" else None

    @property
    def engine(self) -> AsyncEngine:
        return self._writer

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        started = time.monotonic()
        try:
            async with self._reader.connect() as conn, conn.begin():
                yield conn
        except Exception as exc:
            self._fault(exc, started)
        self.outage.succeeded(started)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        started = time.monotonic()
        try:
            async with self._write_lock, self._writer.begin() as conn:
                yield conn
        except Exception as exc:
            self._fault(exc, started)
        self.outage.succeeded(started)

    def _fault(self, exc: Exception, started: float) -> NoReturn:
        """Re-raise ``exc``, as ``Unavailable`` when it means the database is unreachable."""
        if not isinstance(exc, ClearpostError) and unreachable(exc):
            self.outage.failed(exc, started)
            raise Unavailable(
                "the database cannot be reached right now; try again shortly",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        raise exc

    async def run_write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in one write transaction (committed if it returns,
        rolled back if it raises). On SQLite it runs on the one writer thread with the plain
        sqlite3 driver — one thread hop per transaction — serialised with ``write()`` by an
        in-process lock, so the two never contend for SQLite's write lock."""
        if self._sync_writer is not None and self._write_thread is not None:

            def in_thread() -> T:
                conn = self._thread_writer()
                with conn.begin():
                    return fn(conn, *args)

            started = time.monotonic()
            try:
                async with self._write_lock:
                    result = await asyncio.get_running_loop().run_in_executor(
                        self._write_thread, in_thread
                    )
            except Exception as exc:
                self._fault(exc, started)
            self.outage.succeeded(started)
            return result
        async with self.write() as aconn:
            return await aconn.run_sync(fn, *args)

    def _thread_writer(self) -> Connection:
        """The writer thread's connection, kept open between transactions: checking one
        out of the pool and back for each was a tenth of a message batch's write."""
        conn = self._writer_conn
        if conn is None or conn.closed or conn.invalidated:
            assert self._sync_writer is not None
            conn = self._writer_conn = self._sync_writer.connect()
        return conn

    async def run_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in one read transaction.

        On SQLite the whole function runs on a reader thread with the plain sqlite3 driver:
        one thread hop per transaction instead of one per statement, which is most of the
        cost of a small read through aiosqlite. On PostgreSQL it runs through asyncpg
        (``run_sync``). ``fn`` must only read."""
        if self._sync_reader is not None and self._read_threads is not None:

            def in_thread() -> T:
                conn = self._thread_reader()
                with conn.begin():
                    return fn(conn, *args)

            started = time.monotonic()
            try:
                result = await asyncio.get_running_loop().run_in_executor(
                    self._read_threads, in_thread
                )
            except Exception as exc:
                self._fault(exc, started)
            self.outage.succeeded(started)
            return result
        async with self.read() as aconn:
            return await aconn.run_sync(fn, *args)

    def _thread_reader(self) -> Connection:
        """This reader thread's connection, kept open between transactions (as the
        writer's is): a pool check-out and check-in per read was about 70 of the 220 µs a
        read took on the event loop and the reader thread together, and tile requests are
        read a thousand batches a second."""
        conn: Connection | None = getattr(self._reader_local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            assert self._sync_reader is not None
            conn = self._reader_local.conn = self._sync_reader.connect()
            self._reader_conns.append(conn)
        return conn

    async def ping(self) -> None:
        await self.run_read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())

    async def close(self) -> None:
        if self._sync_reader is not None and self._read_threads is not None:
            self._read_threads.shutdown(wait=True)
            for conn in self._reader_conns:  # their threads have ended
                conn.close()
            self._reader_conns.clear()
            self._sync_reader.dispose()
        if self._sync_writer is not None and self._write_thread is not None:
            if self._writer_conn is not None:  # closed on the thread that uses it
                await asyncio.get_running_loop().run_in_executor(
                    self._write_thread, self._writer_conn.close
                )
            self._write_thread.shutdown(wait=True)
            self._sync_writer.dispose()
        await self._reader.dispose()
        if self._writer is not self._reader:
            await self._writer.dispose()


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg wants, from an SQLAlchemy URL."""
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)
