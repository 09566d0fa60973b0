"""Exactly one process sequences the log, under every fault (issue 22, item 2).

The sequencer used to hold its PostgreSQL advisory lock on one connection and integrate on
others, so a process whose lock had gone (a PostgreSQL restart, a killed session) went on
writing tiles and checkpoints while another process took the lock: both logged "log tile
(0,n) does not end where the tree does" and duplicate checkpoints. Now every integration
checks the role in its own transaction, on the connection that holds the lock.

The first tests are in-process (two log services with their own pools play two processes)
on the shared test server, killing only their own sessions. The last restarts a private
PostgreSQL under two real ``clearpost serve`` processes.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from clearpost.cli.main import app
from clearpost.core.clock import SystemClock
from clearpost.core.tlog import Signer
from clearpost.server.services.tlog import LogService
from clearpost.storage.db import Database, asyncpg_dsn
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.sequencer import NotSequencer
from clearpost.storage.sql.tlog import LogStore
from tests.support import api
from tests.support.pg import PrivatePostgres, available
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.postgres

SIGNER = Signer.generate("clearpost.test/fencing")


def _entry(n: int) -> dict[str, Any]:
    return {"type": "device", "n": n}


async def _process(url: str, name: str) -> tuple[Database, LogService]:
    """A log service with its own pool, as one server process has."""
    db = Database(url)
    store = LogStore(db)
    await store.bind_key(SIGNER.vkey)
    log = LogService(db, store, SIGNER, [], SystemClock())
    log.role.holder = name
    return db, log


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[LogService, LogService]]:
    first = Database(pg_url)
    await upgrade(first)
    await first.close()
    db_a, a = await _process(pg_url, "process-a")
    db_b, b = await _process(pg_url, "process-b")
    try:
        yield a, b
    finally:
        for log, db in ((a, db_a), (b, db_b)):
            await log.role.release()
            await db.close()


async def _sql(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


# the sequencer's lock in this test's database only (other tests' servers hold their own)
_ROLE_LOCK = (
    "pg_locks WHERE locktype = 'advisory' AND objid = 1129074772 AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


async def _kill_role_session(url: str) -> None:
    """End the session that holds the sequencer's advisory lock, as a restart would."""
    (holder,) = await _sql(url, f"SELECT pid FROM {_ROLE_LOCK}")
    await _sql(url, "SELECT pg_terminate_backend($1)", holder[0])
    for _ in range(100):  # the backend exits, and frees the lock, just after
        if not await _sql(url, "SELECT 1 FROM pg_stat_activity WHERE pid = $1", holder[0]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the killed session is still there")


async def _checkpoints(url: str) -> list[tuple[int, int | None, str | None]]:
    rows = await _sql(
        url,
        "SELECT c.size, c.term, t.holder FROM tlog_checkpoints c"
        " LEFT JOIN tlog_sequencer_terms t ON t.term = c.term ORDER BY c.size",
    )
    return [(int(r[0]), r[1], r[2]) for r in rows]


async def test_a_process_that_lost_its_session_writes_nothing_more(
    two: tuple[LogService, LogService], pg_url: str
) -> None:
    a, b = two
    await a.append(_entry(1))
    assert await a.integrate_once() == 1  # a takes the role (term 1)
    assert await b.integrate_once() is None  # b is a follower
    await _kill_role_session(pg_url)  # a's lock is gone; a has not noticed yet
    await b.append(_entry(2))
    assert await b.integrate_once() == 2  # b takes the role (term 2)
    await b.append(_entry(3))
    # a tries to integrate: its role connection is dead, so it gives the role up instead
    # of writing through another connection
    with pytest.raises(Exception):  # noqa: B017 - whatever the dead connection raises
        await a.integrate_once()
    assert a.role.term is None
    assert await a.integrate_once() is None  # and b holds the lock: a stays a follower
    assert await b.integrate_once() == 3
    assert await _checkpoints(pg_url) == [
        (1, 1, "process-a"),
        (2, 2, "process-b"),
        (3, 2, "process-b"),
    ]


async def test_a_superseded_term_is_fenced_out_in_the_writing_transaction(
    two: tuple[LogService, LogService], pg_url: str
) -> None:
    a, _ = two
    await a.append(_entry(1))
    assert await a.integrate_once() == 1
    # a newer term begins behind a's back (as a process that took the role would)
    await _sql(pg_url, "UPDATE tlog_sequencer SET term = term + 1, holder = 'someone else'")
    await a.append(_entry(2))
    with pytest.raises(NotSequencer):
        await a.integrate_once()
    assert a.role.term is None
    assert await _checkpoints(pg_url) == [(1, 1, "process-a")]  # nothing written


async def test_the_role_passes_on_when_the_holder_goes_and_terms_never_interleave(
    two: tuple[LogService, LogService], pg_url: str
) -> None:
    a, b = two
    for n in range(3):
        await a.append(_entry(n))
        await a.integrate_once()
    await a.role.release()  # a process stopping (or dying) frees the lock
    await b.append(_entry(9))
    assert await b.integrate_once() == 4
    terms = [term for _, term, _ in await _checkpoints(pg_url)]
    assert terms == sorted(terms) and terms[0] != terms[-1]


def _count_integrations(log: LogService, name: str, counts: dict[str, int]) -> None:
    """Count the integrations ``log`` commits (wrapping the step both versions of the code
    have, so this test could run against the code before fencing, where it failed)."""
    step = log._integrate

    def counted(conn: Any, *args: Any) -> int | None:
        size = step(conn, *args)
        if size is not None:
            counts[name] = counts.get(name, 0) + 1
        return size

    log._integrate = counted  # type: ignore[method-assign]


@pytest.mark.slow
async def test_after_its_session_is_killed_only_the_new_holder_integrates(
    two: tuple[LogService, LogService], pg_url: str
) -> None:
    """Both run their sequencer loops. Before fencing, the process whose lock session was
    killed went on integrating on its pool's connections next to the new holder (20 and 20
    of 40 appends here); now it stops at once."""
    a, b = two
    counts: dict[str, int] = {}
    _count_integrations(a, "a", counts)
    _count_integrations(b, "b", counts)
    loops = [asyncio.create_task(a.run_sequencer())]
    try:
        await a.append(_entry(0))
        await asyncio.sleep(1.0)
        loops.append(asyncio.create_task(b.run_sequencer()))
        await asyncio.sleep(1.0)
        assert counts.get("a", 0) >= 1 and "b" not in counts, counts  # (an empty log's
        # first checkpoint, of size 0, may come before the entry's)
        await _kill_role_session(pg_url)
        counts.clear()
        for n in range(1, 21):
            await (a, b)[n % 2].append(_entry(n))
            await asyncio.sleep(0.15)
        await b.wait_integrated(20, timeout=10)
    finally:
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
    assert "a" not in counts and counts.get("b", 0) > 0, counts


# --- PostgreSQL restarts under two real server processes ---


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    reason = available()
    if reason is not None:
        pytest.fail(reason)  # the binaries are part of the test environment
    with PrivatePostgres.create() as pg:
        pg.create_database("clearpost")
        yield pg


class Load:
    """Accounts with device keys (each a log entry) made through both servers, in a
    thread, until stopped; failures while the database is down are expected and counted."""

    def __init__(self, urls: list[str]) -> None:
        self.urls, self.ok, self.failed = urls, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)

    async def _run(self) -> None:
        clients = [httpx.AsyncClient(base_url=u, timeout=10) for u in self.urls]
        try:
            n = 0
            while not self._stop.is_set():
                n += 1
                try:
                    await api.user(clients[n % 2], f"load{n}", otks=0)
                    self.ok += 1
                except (AssertionError, httpx.HTTPError):
                    self.failed += 1
                    await asyncio.sleep(0.1)
        finally:
            for c in clients:
                await c.aclose()


def _wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _integrated(url: str) -> bool:
    rows = asyncio.run(
        _sql(
            url,
            "SELECT (SELECT next_index FROM tlog_state), (SELECT max(size) FROM tlog_checkpoints)",
        )
    )
    return bool(rows and rows[0][1] is not None and rows[0][0] == rows[0][1])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgres_restarts_under_two_processes_never_give_two_sequencers(
    tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    url = private_pg.url("clearpost")
    key = {"CLEARPOST_LOG_KEY_FILE": str(tmp_path / "shared-log.key")}
    servers: list[ServerProcess] = []
    try:
        servers.append(start_server(tmp_path / "a", url, key))
        servers.append(start_server(tmp_path / "b", url, key))
        with Load([s.url for s in servers]) as load:
            _wait_for(lambda: load.ok >= 20, 60, "load before the restarts")
            for mode in ("fast", "immediate", "fast"):
                private_pg.stop(mode)  # type: ignore[arg-type]
                time.sleep(1.0)
                private_pg.start()
                before = load.ok
                _wait_for(lambda b=before: load.ok >= b + 20, 90, f"load after a {mode} stop")
        _wait_for(lambda: _integrated(url), 30, "every entry integrated")
        # the log verifies end to end through either server
        for server in servers:
            verify = CliRunner().invoke(app, ["audit", "verify", "--server", server.url, "--full"])
            assert verify.exit_code == 0, verify.output
        logs = "\n".join(s.log() for s in servers)
    finally:
        for s in servers:
            s.stop()
    assert "does not end where the tree does" not in logs
    assert "tlog_checkpoints_pkey" not in logs
    # from the database: every checkpoint was written under a recorded term, terms only
    # grow along the log, and no two terms' writing windows overlap in time
    rows = asyncio.run(
        _sql(
            url,
            "SELECT c.term, t.holder, min(c.size), max(c.size), min(c.created_at),"
            " max(c.created_at), t.started_at FROM tlog_checkpoints c"
            " JOIN tlog_sequencer_terms t ON t.term = c.term"
            " GROUP BY c.term, t.holder, t.started_at ORDER BY min(c.size)",
        )
    )
    (unrecorded,) = asyncio.run(
        _sql(url, "SELECT count(*) FROM tlog_checkpoints WHERE term IS NULL")
    )
    assert unrecorded[0] == 0
    assert len(rows) >= 2, rows  # the restarts ended terms; the role was taken again
    for earlier, later in itertools.pairwise(rows):
        assert earlier[0] < later[0], rows  # terms grow along the log
        assert earlier[3] < later[2], rows  # sizes do not interleave
        assert earlier[5] <= later[4], rows  # nor do the times they were written
        assert later[6] <= later[4], rows  # and a term writes only after it began
    holders = {r[1] for r in rows}
    assert all(h.count(":") == 2 for h in holders), holders  # host:pid:tag
