"""Fill a server's database with many log entries before it starts (fast: the store and
the sequencer directly, signing with the server's own key file), as bench/tlog_bench.py
does. Entries are realistic ``device`` entries of about 300 bytes."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from clearpost.core.clock import SystemClock
from clearpost.core.tlog import Signer
from clearpost.core.tlog.entries import commitment, device_entry, encode_entry
from clearpost.server.services.logkey import load_or_create
from clearpost.server.services.tlog import LogService
from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.tlog import LogStore, PendingEntry

ORIGIN = "clearpost.localhost/log"  # the server's default log_origin


def populate(data_dir: Path, database: str, count: int, *, batch: int = 20_000) -> int:
    """Append and integrate ``count`` entries (checkpoints every ``batch``); return the size.
    Call it before the server starts (it runs its own event loop)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    signer = load_or_create(data_dir / "log.key", ORIGIN)
    return asyncio.run(_populate(signer, database, count, batch))


async def _populate(signer: Signer, database: str, count: int, batch: int) -> int:
    db = Database(database)
    log: LogService | None = None
    try:
        await upgrade(db)
        store = LogStore(db)
        await store.bind_key(signer.vkey)
        log = LogService(db, store, signer, [], SystemClock())
        salt = secrets.token_bytes(32)
        done = await store.next_index()
        while done < count:
            n = min(batch, count - done)
            pending = []
            for i in range(done, done + n):
                subject = commitment(salt, f"@user{i}:test")
                entry = device_entry(subject, "added", 1_700_000_000_000 + i)
                pending.append(PendingEntry(encode_entry(entry), subject))
            await store.append(pending, SystemClock().now_ms())
            while await log.integrate_once() is not None:
                pass
            done += n
        return done
    finally:
        if log is not None:  # on PostgreSQL the role holds a connection of its own
            await log.role.release()
        await db.close()
