"""Key-directory storage: leaves, versions (with openings and values), epochs, and the
accounts whose devices changed since the last epoch.

The publishing functions (``*_sync``) run inside the log sequencer's fenced write
transaction (``server/services/sequencer.py``), so with several server processes on one
database only the role holder publishes, and an epoch's rows, its log entry and the
checkpoint that covers it commit together.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.storage.db import Database
from clearpost.storage.schema import (
    devices,
    keydir_dirty,
    keydir_epochs,
    keydir_leaves,
    keydir_subjects,
    keydir_versions,
    tlog_entries,
)
from clearpost.storage.sql import tlog as tlog_store  # a module: tlog imports this one too
from clearpost.storage.sql.bulk import insert_many
from clearpost.storage.sql.plain import plain_sqlite

if TYPE_CHECKING:
    from clearpost.storage.sql.tlog import StoredCheckpoint

LEAF_READ_BATCH = 50_000
_SQLITE_ALL_LEAVES = "SELECT idx, commitment, epoch FROM keydir_leaves WHERE epoch <= ?"
MAX_EPOCH = 2**62


@dataclass(frozen=True, slots=True)
class Epoch:
    epoch: int
    root: bytes
    log_index: int
    through: int
    created_at: int


_EPOCHS = select(
    keydir_epochs.c.epoch,
    keydir_epochs.c.root,
    keydir_epochs.c.log_index,
    keydir_epochs.c.through,
    keydir_epochs.c.created_at,
)
"""Epoch rows without their update proof: it is read only for auditors (``epoch_proof``),
and after an epoch of 10,000 changes it is 1.5 MB, which every lookup read with the latest
epoch."""


@dataclass(frozen=True, slots=True)
class Version:
    label: str
    version: int
    epoch: int
    index: bytes
    vrf_proof: bytes
    opening: bytes
    value: bytes


# --- hooks called in other stores' transactions ---


async def mark_dirty(conn: AsyncConnection, user_id: str, now_ms: int) -> None:
    """The account's devices changed: the next epoch commits its new device list."""
    await conn.run_sync(mark_dirty_sync, user_id, now_ms)


def mark_dirty_sync(conn: Connection, user_id: str, now_ms: int) -> None:
    found = conn.execute(
        select(keydir_dirty.c.user_id).where(keydir_dirty.c.user_id == user_id)
    ).first()
    if found is None:
        conn.execute(insert(keydir_dirty).values(user_id=user_id, since=now_ms))


async def map_subject(conn: AsyncConnection, subject: str, user_id: str) -> None:
    """Remember whose log entries the private index ``subject`` finds (a new salt)."""
    await conn.execute(insert(keydir_subjects).values(subject=subject, user_id=user_id))


def forget_user_sync(conn: Connection, user_id: str, labels: Sequence[str]) -> None:
    """Account erasure: the values, openings and VRF proofs of its labels go (the leaves,
    commitments that reveal nothing without them, stay: the tree only grows; a new account
    of the same name continues after them, ``KeyDirService._first_free``)."""
    conn.execute(delete(keydir_versions).where(keydir_versions.c.label.in_(list(labels))))
    conn.execute(delete(keydir_subjects).where(keydir_subjects.c.user_id == user_id))
    conn.execute(delete(keydir_dirty).where(keydir_dirty.c.user_id == user_id))


# --- publishing (the sequencer's transaction) ---


def latest_epoch_sync(conn: Connection) -> Epoch | None:
    row = conn.execute(_EPOCHS.order_by(keydir_epochs.c.epoch.desc()).limit(1)).first()
    return Epoch(*row) if row else None


def count_epochs_sync(
    conn: Connection, through: int, upto: int = MAX_EPOCH
) -> tuple[Epoch | None, Epoch | None]:
    """The first epoch (up to ``upto``) whose ``through`` is this one, the one that counted
    the entries about people below it, and the epoch right before that one (None: the
    first epoch). ``through`` never falls from one epoch to the next, so the count follows
    the last epoch with a lower ``through``: both are found walking the key back from
    ``upto``, past the epochs since that count only. (None, None): no epoch has it."""
    epochs = keydir_epochs.c
    row = conn.execute(
        _EPOCHS.where(epochs.through < through, epochs.epoch <= upto)
        .order_by(epochs.epoch.desc())
        .limit(1)
    ).first()
    before = Epoch(*row) if row else None
    row = conn.execute(
        _EPOCHS.where(epochs.epoch > (-1 if before is None else before.epoch), epochs.epoch <= upto)
        .order_by(epochs.epoch)
        .limit(1)
    ).first()
    first = Epoch(*row) if row else None
    if first is None or first.through != through:
        return None, None
    return before, first


def counted_at_sync(conn: Connection, through: int) -> int | None:
    """When the entries about people below ``through`` were counted (ms): when the first
    epoch with this ``through`` was published."""
    _, first = count_epochs_sync(conn, through)
    return None if first is None else first.created_at


def dirty_users_sync(conn: Connection, limit: int) -> list[str]:
    rows = conn.execute(
        select(keydir_dirty.c.user_id).order_by(keydir_dirty.c.since).limit(limit)
    ).all()
    return [r[0] for r in rows]


def device_keys_sync(conn: Connection, user_ids: Sequence[str]) -> dict[str, list[str]]:
    """The signed device keys (JSON text, as uploaded) of each account's devices, in device
    order: one read for an epoch's accounts, not one each."""
    out: dict[str, list[str]] = {u: [] for u in user_ids}
    if not user_ids:
        return out
    rows = conn.execute(
        select(devices.c.user_id, devices.c.device_keys)
        .where(devices.c.user_id.in_(list(user_ids)), devices.c.device_keys.is_not(None))
        .order_by(devices.c.user_id, devices.c.device_id)
    ).all()
    for user_id, keys in rows:
        out[user_id].append(keys)
    return out


def entries_about_sync(conn: Connection, start: int, end: int) -> list[tuple[int, str]]:
    """(index, person) of every entry about a known person in ``[start, end)``."""
    rows = conn.execute(
        select(tlog_entries.c.idx, keydir_subjects.c.user_id)
        .join(keydir_subjects, keydir_subjects.c.subject == tlog_entries.c.subject)
        .where(tlog_entries.c.idx >= start, tlog_entries.c.idx < end)
        .order_by(tlog_entries.c.idx)
    ).all()
    return [(int(r[0]), r[1]) for r in rows]


def latest_versions_sync(conn: Connection, labels: Sequence[str]) -> dict[str, Version]:
    """The greatest version of each label that has one."""
    if not labels:
        return {}
    top = (
        select(keydir_versions.c.label, func.max(keydir_versions.c.version).label("v"))
        .where(keydir_versions.c.label.in_(list(labels)))
        .group_by(keydir_versions.c.label)
        .subquery()
    )
    rows = conn.execute(
        select(keydir_versions).join(
            top, (top.c.label == keydir_versions.c.label) & (top.c.v == keydir_versions.c.version)
        )
    ).all()
    return {r[0]: Version(*r) for r in rows}


def store_epoch_sync(
    conn: Connection,
    epoch: Epoch,
    proof: bytes,
    versions: Sequence[tuple[Version, bytes]],
    done_users: Sequence[str],
) -> None:
    """One epoch's rows: its leaves, its versions, the epoch with its update proof, and the
    accounts done."""
    if versions:
        insert_many(
            conn,
            "keydir_leaves",
            ("idx", "commitment", "epoch"),
            [(v.index, c, epoch.epoch) for v, c in versions],
        )
        insert_many(
            conn,
            "keydir_versions",
            ("label", "version", "epoch", "idx", "vrf_proof", "opening", "value"),
            [
                (v.label, v.version, v.epoch, v.index, v.vrf_proof, v.opening, v.value)
                for v, _ in versions
            ],
        )
    conn.execute(
        insert(keydir_epochs).values(
            epoch=epoch.epoch,
            root=epoch.root,
            log_index=epoch.log_index,
            through=epoch.through,
            created_at=epoch.created_at,
            proof=proof,
        )
    )
    if done_users:
        conn.execute(delete(keydir_dirty).where(keydir_dirty.c.user_id.in_(list(done_users))))


def leaves_sync(
    conn: Connection, after_epoch: int = -1, upto_epoch: int | None = None
) -> Iterator[tuple[bytes, bytes, int]]:
    """Every leaf (index, commitment, epoch) of epochs after ``after_epoch`` up to
    ``upto_epoch`` (the epoch the caller read: a later one may commit meanwhile).

    All of them (``after_epoch < 0``, a tree rebuilt at start): on SQLite one statement on
    the plain sqlite3 connection, streamed by its cursor (a million leaves in about 0.6 s,
    against 5 s through SQLAlchemy); on PostgreSQL in pages along the primary key. Those of
    the last few epochs come by epoch, along its index. (Paging every leaf by (epoch,
    index) made each page sort the leaves of its epochs again: 19 s to read a million
    leaves published in one epoch.)"""
    upto = MAX_EPOCH if upto_epoch is None else upto_epoch
    leaf = keydir_leaves.c
    raw = plain_sqlite(conn) if after_epoch < 0 else None
    if raw is not None:
        for i, c, e in raw.execute(_SQLITE_ALL_LEAVES, (upto,)):
            yield bytes(i), bytes(c), int(e)
        return
    by_index = after_epoch < 0
    last: tuple[int, bytes] | None = None  # the last leaf read: the next page starts after it
    while True:
        query = select(leaf.idx, leaf.commitment, leaf.epoch).where(leaf.epoch <= upto)
        if by_index:
            query = query.order_by(leaf.idx)
            if last is not None:
                query = query.where(leaf.idx > last[1])
        else:
            query = query.order_by(leaf.epoch, leaf.idx).where(
                leaf.epoch > after_epoch
                if last is None
                else (leaf.epoch > last[0]) | ((leaf.epoch == last[0]) & (leaf.idx > last[1]))
            )
        rows = conn.execute(query.limit(LEAF_READ_BATCH)).all()
        for r in rows:
            yield bytes(r[0]), bytes(r[1]), int(r[2])
        if len(rows) < LEAF_READ_BATCH:
            return
        last = (int(rows[-1][2]), bytes(rows[-1][0]))


# --- proving ---


def versions_sync(conn: Connection, label: str, upto_epoch: int) -> list[Version]:
    """Every version of ``label`` published by ``upto_epoch``, oldest first."""
    rows = conn.execute(
        select(keydir_versions)
        .where(keydir_versions.c.label == label, keydir_versions.c.epoch <= upto_epoch)
        .order_by(keydir_versions.c.version)
    ).all()
    return [Version(*r) for r in rows]


def anchor_sync(
    conn: Connection, label: str
) -> tuple[Epoch | None, StoredCheckpoint | None, list[Version]]:
    """What a proof about ``label`` starts from, in one read: the latest epoch, the latest
    checkpoint, and the label's versions published by that epoch."""
    latest = latest_epoch_sync(conn)
    checkpoint = tlog_store.latest_sync(conn)
    return latest, checkpoint, versions_sync(conn, label, latest.epoch) if latest else []


class KeyDirStore:
    """Reads for proofs and auditors."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def latest_epoch(self) -> Epoch | None:
        async with self.db.read() as conn:
            return await conn.run_sync(latest_epoch_sync)

    async def anchor(
        self, label: str
    ) -> tuple[Epoch | None, StoredCheckpoint | None, list[Version]]:
        """``anchor_sync`` in one read transaction."""
        return await self.db.run_read(anchor_sync, label)

    async def count_epochs(self, through: int, upto: int) -> tuple[Epoch | None, Epoch | None]:
        """``count_epochs_sync`` in one read transaction."""
        return await self.db.run_read(count_epochs_sync, through, upto)

    async def epoch(self, n: int) -> Epoch | None:
        async with self.db.read() as conn:
            row = (await conn.execute(_EPOCHS.where(keydir_epochs.c.epoch == n))).first()
            return Epoch(*row) if row else None

    async def epoch_proof(self, n: int) -> bytes:
        """The update proof from epoch ``n - 1``'s root to epoch ``n``'s
        (``core/keydir/tree.py``); ``n`` is an epoch that exists."""
        async with self.db.read() as conn:
            found = await conn.execute(
                select(keydir_epochs.c.proof).where(keydir_epochs.c.epoch == n)
            )
            return bytes(found.scalar_one())

    async def epoch_leaves(self, n: int) -> list[tuple[bytes, bytes]]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(keydir_leaves.c.idx, keydir_leaves.c.commitment)
                    .where(keydir_leaves.c.epoch == n)
                    .order_by(keydir_leaves.c.idx)
                )
            ).all()
            return [(bytes(r[0]), bytes(r[1])) for r in rows]

    async def leaves_after(self, epoch: int) -> list[tuple[bytes, bytes, int]]:
        async with self.db.read() as conn:
            return await conn.run_sync(lambda c: list(leaves_sync(c, epoch)))

    async def is_dirty(self, user_id: str) -> bool:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(keydir_dirty.c.user_id).where(keydir_dirty.c.user_id == user_id)
                )
            ).first()
            return row is not None
