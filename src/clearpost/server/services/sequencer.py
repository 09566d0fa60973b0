"""This process's claim on the log sequencer role.

On PostgreSQL the role lives on one dedicated connection: it holds the session advisory
lock, and every integration runs in a transaction on that same connection, behind the fence
of ``storage.sql.sequencer.check_role``. When anything goes wrong on it (the connection is
lost in a PostgreSQL restart, the fence fails, a write fails) the connection is thrown
away at once, which ends the session and so frees the lock: this process writes nothing
more until it takes the role again, with a new term, on a later tick. If another process
took it meanwhile, this one stays a follower.

On SQLite one process serves the database; it takes a term once, to record which process
wrote each checkpoint, and integrates through the ordinary writer (see ``check_role``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.clock import Clock
from clearpost.storage.db import Database
from clearpost.storage.sql.sequencer import TRY_LOCK, check_role, take_role

log = logging.getLogger("clearpost.tlog")

T = TypeVar("T")


def process_identity() -> str:
    """Who this process is, in the terms history: host, process id and a random tag (a
    process id can be reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class SequencerRole:
    def __init__(self, db: Database, clock: Clock, holder: str | None = None) -> None:
        self.db, self.clock = db, clock
        self.holder = holder or process_identity()
        self.term: int | None = None
        self._conn: AsyncConnection | None = None
        self._busy = asyncio.Lock()  # the role's connection runs one transaction at a time

    async def run(self, fn: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        """Run ``fn(conn, term, ...)`` in one write transaction as the role holder, taking
        the role first if it is free. Returns (False, None) when another process holds it.
        On PostgreSQL the transaction starts with the fence; any failure gives the role up."""
        async with self._busy:
            if self.db.dialect.is_sqlite:
                if self.term is None:
                    self.term = await self.db.run_write(take_role, self.holder, self.clock.now_ms())
                return True, await self.db.run_write(fn, self.term, *args)
            if self._conn is None and not await self._take():
                return False, None
            assert self._conn is not None and self.term is not None
            try:
                async with self._conn.begin():
                    return True, await self._conn.run_sync(_fenced, fn, self.term, *args)
            except BaseException:
                await self._give_up()
                raise

    async def release(self) -> None:
        async with self._busy:
            await self._give_up()

    async def _take(self) -> bool:
        conn = await self.db.engine.connect()
        try:
            if not (await conn.execute(TRY_LOCK)).scalar_one():
                await conn.rollback()
                await conn.close()
                return False
            term = await conn.run_sync(take_role, self.holder, self.clock.now_ms())
            await conn.commit()
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        self._conn, self.term = conn, term
        log.info("this process is now the log sequencer (term %d, %s)", term, self.holder)
        return True

    async def _give_up(self) -> None:
        """Stop being the sequencer now: end the session (not just return the connection
        to the pool, where it would keep the advisory lock)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self.term is not None:
            log.warning("no longer the log sequencer (term %d ended)", self.term)
        self.term = None
        with contextlib.suppress(Exception):  # it may be dead already: that is why we're here
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()


def _fenced(conn: Connection, fn: Callable[..., T], term: int, *args: Any) -> T:
    check_role(conn, term)
    return fn(conn, term, *args)
