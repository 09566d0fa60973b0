"""The log sequencer role: terms and the fence.

Exactly one process may integrate the log at a time. On PostgreSQL the role is a session
advisory lock (released when the holder's connection ends, so a dead holder frees it) plus
a term in the one-row ``tlog_sequencer`` table. Whoever takes the lock starts a new term
(``take_role``); every integration first runs ``check_role`` in its own write transaction,
which locks that row and checks both that the term is still its own and that its own
session still holds the lock. A process that lost its connection (a PostgreSQL restart, a
network cut) or was superseded cannot commit a single row after that: its transaction
either fails on the dead connection or fails the check. The row lock also orders terms:
a new term cannot begin while the old holder's integration is still uncommitted.

Each checkpoint records the term that wrote it and ``tlog_sequencer_terms`` which process
held each term, so anyone can check from the database that terms never interleaved.
"""

from __future__ import annotations

from sqlalchemy import Connection, text, update

from clearpost.storage.schema import tlog_sequencer, tlog_sequencer_terms

SEQUENCER_LOCK_ID = 0x434C_5054  # "CLPT": the PostgreSQL advisory lock of the sequencer


class NotSequencer(RuntimeError):
    """This process no longer holds the sequencer role; nothing was written."""


TRY_LOCK = text(f"SELECT pg_try_advisory_lock({SEQUENCER_LOCK_ID})")

# A bigint advisory key shows in pg_locks as classid = high 32 bits, objid = low 32 bits,
# objsubid = 1.
_PG_FENCE = text(
    "SELECT s.term, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory'"
    " AND l.pid = pg_backend_pid() AND l.granted"
    f" AND l.classid = {SEQUENCER_LOCK_ID >> 32} AND l.objid = {SEQUENCER_LOCK_ID & 0xFFFFFFFF}"
    " AND l.objsubid = 1)"
    " FROM tlog_sequencer s WHERE s.id = 1 FOR UPDATE OF s"
)


def take_role(conn: Connection, holder: str, now_ms: int) -> int:
    """Begin a new term held by ``holder`` (the caller holds the advisory lock); returns it."""
    term = int(
        conn.execute(
            update(tlog_sequencer)
            .where(tlog_sequencer.c.id == 1)
            .values(term=tlog_sequencer.c.term + 1, holder=holder, started_at=now_ms)
            .returning(tlog_sequencer.c.term)
        ).scalar_one()
    )
    conn.execute(tlog_sequencer_terms.insert().values(term=term, holder=holder, started_at=now_ms))
    return term


def check_role(conn: Connection, term: int) -> None:
    """The fence, run first in the transaction that writes (PostgreSQL): raise
    ``NotSequencer`` unless ``term`` is still the current term and this session still holds
    the advisory lock. The role row stays locked until this transaction ends.

    SQLite needs no fence: one process serves a file, and every write transaction there
    holds the database's single write lock, so an integration always reads the tree as
    the previous one left it."""
    current, locked = conn.execute(_PG_FENCE).one()
    if int(current) != term or not locked:
        raise NotSequencer(
            f"term {term} is over (current term {current}, advisory lock held: {locked})"
        )
