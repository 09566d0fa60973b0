"""Transparency-log storage: entries, tiles of node hashes, checkpoints, cosignatures.

Appends take indexes from the ``tlog_state`` row, locked until commit, so indexes commit
in order: the sequencer integrates ``[size, next_index)`` knowing every one of them is
durable. Perfect-subtree node hashes are kept in tiles of eight levels
(``core/tlog/tiles.py``): the sequencer appends to the right-edge tile of each level, a
full tile never changes, and a proof reads one tile per eight levels of the tree.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Connection, TextClause, bindparam, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.errors import StoredDataDamaged
from clearpost.core.tlog import HASH_SIZE, NodeId, edge_nodes, leaf_hash
from clearpost.core.tlog.entries import Committed, commitment
from clearpost.core.tlog.tiles import TileId, hash_at, locate
from clearpost.storage.db import Database
from clearpost.storage.schema import (
    tlog_checkpoints,
    tlog_cosignatures,
    tlog_entries,
    tlog_state,
    user_salts,
)
from clearpost.storage.sql import keydir
from clearpost.storage.sql.bulk import insert_many, upsert_many
from clearpost.storage.sql.plain import plain_sqlite


@dataclass(frozen=True, slots=True)
class PendingEntry:
    body: bytes
    subject: str | None
    """The server's private index of whom the entry is about (never published)."""
    opening: bytes | None = None
    """What opens the entry's own commitment; handed only to that person's devices."""

    @classmethod
    def about(cls, body: bytes, committed: Committed) -> PendingEntry:
        return cls(body, committed.key, committed.opening)


@dataclass(frozen=True, slots=True)
class EntryAbout:
    index: int
    body: bytes
    opening: bytes | None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str


async def append_in(
    conn: AsyncConnection, entries: Sequence[PendingEntry], now_ms: int
) -> list[int]:
    """Append inside the caller's transaction; the indexes are durable when it commits."""
    return await conn.run_sync(append_sync, entries, now_ms)


def append_sync(conn: Connection, entries: Sequence[PendingEntry], now_ms: int) -> list[int]:
    """``append_in`` for a plain connection (``Database.run_write``)."""
    if not entries:
        return []
    top = conn.execute(_RESERVE, {"n": len(entries)}).scalar_one()
    first = int(top) - len(entries)
    rows = [
        (first + i, e.body, leaf_hash(e.body), e.subject, e.opening, now_ms)
        for i, e in enumerate(entries)
    ]
    columns = ("idx", "body", "leaf_hash", "subject", "opening", "created_at")
    insert_many(conn, "tlog_entries", columns, rows)
    return list(range(first, first + len(entries)))


_RESERVE = (
    update(tlog_state)
    .where(tlog_state.c.id == 1)
    .values(next_index=tlog_state.c.next_index + bindparam("n"))
    .returning(tlog_state.c.next_index)
)


async def salt_in(conn: AsyncConnection, user_id: str) -> bytes:
    """The user's commitment salt, created on first use."""
    row = (
        await conn.execute(select(user_salts.c.salt).where(user_salts.c.user_id == user_id))
    ).first()
    if row is not None:
        return bytes(row[0])
    salt = secrets.token_bytes(32)
    await conn.execute(user_salts.insert().values(user_id=user_id, salt=salt))
    await keydir.map_subject(conn, commitment(salt, user_id), user_id)  # issue 17
    return salt


class LogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, entries: Sequence[PendingEntry], now_ms: int) -> list[int]:
        return await self.db.run_write(append_sync, list(entries), now_ms)

    async def salt(self, user_id: str) -> bytes:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(user_salts.c.salt).where(user_salts.c.user_id == user_id))
            ).first()
        if row is not None:
            return bytes(row[0])
        try:
            async with self.db.write() as conn:
                return await salt_in(conn, user_id)
        except IntegrityError:  # created concurrently
            return await self.salt(user_id)

    async def bind_key(self, vkey: str) -> str:
        """Record the log's verifier key on first start; return the one on record."""
        async with self.db.write() as conn:
            await conn.execute(
                update(tlog_state)
                .where(tlog_state.c.id == 1, tlog_state.c.vkey.is_(None))
                .values(vkey=vkey)
            )
            return str((await conn.execute(select(tlog_state.c.vkey))).scalar_one())

    async def next_index(self) -> int:
        async with self.db.read() as conn:
            return int((await conn.execute(select(tlog_state.c.next_index))).scalar_one())

    async def latest(self) -> StoredCheckpoint | None:
        async with self.db.read() as conn:
            return await _latest(conn)

    async def checkpoint(self, size: int) -> StoredCheckpoint | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        tlog_checkpoints.c.size, tlog_checkpoints.c.root, tlog_checkpoints.c.note
                    ).where(tlog_checkpoints.c.size == size)
                )
            ).first()
            return _stored_checkpoint(row) if row else None

    async def latest_with_cosignatures(
        self, minimum: int
    ) -> tuple[StoredCheckpoint, list[str]] | None:
        """The newest checkpoint that has at least ``minimum`` cosignatures, with them."""
        async with self.db.read() as conn:
            if minimum <= 0:
                cp = await _latest(conn)
            else:
                counted = (
                    select(tlog_cosignatures.c.size)
                    .group_by(tlog_cosignatures.c.size)
                    .having(func.count() >= minimum)
                    .order_by(tlog_cosignatures.c.size.desc())
                    .limit(1)
                )
                size = (await conn.execute(counted)).scalar_one_or_none()
                cp = None if size is None else await _checkpoint(conn, int(size))
            if cp is None:
                return None
            lines = await conn.execute(
                select(tlog_cosignatures.c.line)
                .where(tlog_cosignatures.c.size == cp.size)
                .order_by(tlog_cosignatures.c.witness)
            )
            return cp, [r[0] for r in lines]

    async def add_cosignature(self, size: int, witness: str, line: str, now_ms: int) -> bool:
        """Keep a witness's cosignature of checkpoint ``size``; False if it had one already."""
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    tlog_cosignatures.insert().values(
                        size=size, witness=witness, line=line, created_at=now_ms
                    )
                )
        except IntegrityError:
            return False
        return True

    async def entries(self, start: int, end: int) -> list[bytes]:
        """The stored entries of ``[start, end)``. (A missing row is left out, not refused:
        auditors compare what is served with the signed root and name the gap.)"""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(tlog_entries.c.idx, tlog_entries.c.body)
                .where(tlog_entries.c.idx >= start, tlog_entries.c.idx < end)
                .order_by(tlog_entries.c.idx)
            )
            return [_blob(body, f"entry {idx}", "body") for idx, body in rows]

    async def entries_about(
        self, subject: str, start: int, limit: int
    ) -> tuple[int, list[EntryAbout]]:
        """(how many entries are about ``subject`` in all, the first ``limit`` of them from
        index ``start`` on), read in one transaction."""
        async with self.db.read() as conn:
            total = (
                await conn.execute(select(func.count()).where(tlog_entries.c.subject == subject))
            ).scalar_one()
            rows = await conn.execute(
                select(tlog_entries.c.idx, tlog_entries.c.body, tlog_entries.c.opening)
                .where(tlog_entries.c.subject == subject, tlog_entries.c.idx >= start)
                .order_by(tlog_entries.c.idx)
                .limit(limit)
            )
            found = [
                EntryAbout(
                    int(r[0]),
                    _blob(r[1], f"entry {r[0]}", "body"),
                    None if r[2] is None else bytes(r[2]),
                )
                for r in rows
            ]
            return int(total), found

    async def nodes(self, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
        _, found = await self.proof_material([], ids)
        return found

    async def proof_material(
        self, sizes: Iterable[int], ids: Iterable[NodeId]
    ) -> tuple[set[int], dict[NodeId, bytes]]:
        """Which of ``sizes`` have a published checkpoint, and the stored hashes of ``ids``,
        read in one transaction. (Not cached: what is served must be what is stored, so a
        damaged or rolled-back database shows at once to auditors.)"""
        wanted = list(dict.fromkeys(ids))
        return await self.db.run_read(_proof_rows, sorted(set(sizes)), wanted)


async def _latest(conn: AsyncConnection) -> StoredCheckpoint | None:
    return await conn.run_sync(latest_sync)


def latest_sync(conn: Connection) -> StoredCheckpoint | None:
    row = conn.execute(
        select(tlog_checkpoints.c.size, tlog_checkpoints.c.root, tlog_checkpoints.c.note)
        .order_by(tlog_checkpoints.c.size.desc())
        .limit(1)
    ).first()
    return _stored_checkpoint(row) if row else None


async def _checkpoint(conn: AsyncConnection, size: int) -> StoredCheckpoint | None:
    row = (
        await conn.execute(
            select(tlog_checkpoints.c.size, tlog_checkpoints.c.root, tlog_checkpoints.c.note).where(
                tlog_checkpoints.c.size == size
            )
        )
    ).first()
    return _stored_checkpoint(row) if row else None


def damaged(where: str) -> str:
    """The one wording of every StoredDataDamaged message about the log."""
    return f"stored log data is damaged at {where}"


def _blob(value: object, what: str, column: str) -> bytes:
    """A stored hash or body, which the server wrote as bytes; anything else is damage
    (for example a value rewritten as text), reported instead of failing on it later."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    kind = "missing" if value is None else f"{type(value).__name__}, not bytes"
    raise StoredDataDamaged(damaged(f"{what}: its {column} is {kind}"))


def _stored_checkpoint(row: Sequence[object]) -> StoredCheckpoint:
    size = int(cast(int, row[0]))
    note = row[2]
    if not isinstance(note, str):
        raise StoredDataDamaged(damaged(f"checkpoint {size}: its note is not text"))
    return StoredCheckpoint(size, _blob(row[1], f"checkpoint {size}", "root"), note)


def missing_node(node: NodeId) -> str:
    """The damage message for a tree node that should be stored and is not."""
    tile, position = locate(node)
    return damaged(
        f"tree node (level {node.level}, index {node.index}): tile (level {tile.level}, "
        f"index {tile.index}) is missing or holds fewer than {position + 1} hashes"
    )


def integration_input(conn: Connection, size: int, limit: int) -> tuple[list[bytes], list[bytes]]:
    """(edge hashes of the tree at ``size``, leaf hashes of entries from ``size`` on)."""
    edges = list(edge_nodes(size))
    stored = read_nodes(conn, edges)
    for node in edges:
        if node not in stored:
            raise StoredDataDamaged(missing_node(node))
    leaves = conn.execute(
        select(tlog_entries.c.idx, tlog_entries.c.leaf_hash)
        .where(tlog_entries.c.idx >= size)
        .order_by(tlog_entries.c.idx)
        .limit(limit)
    )
    return [stored[n] for n in edges], [_blob(r[1], f"entry {r[0]}", "leaf hash") for r in leaves]


def store_integration(
    conn: Connection,
    nodes: Sequence[tuple[NodeId, bytes]],
    size: int,
    root: bytes,
    note: str,
    now_ms: int,
    term: int | None,
) -> None:
    """Add the nodes an integration completed (in completion order) to their tiles, and
    the checkpoint, recording the sequencer ``term`` that wrote them."""
    grown: dict[TileId, list[bytes]] = {}
    first: dict[TileId, int] = {}
    for node, h in nodes:
        tile, position = locate(node)
        if tile not in grown:
            grown[tile], first[tile] = [], position
        grown[tile].append(h)
    partial = [t for t, p in first.items() if p > 0]  # right-edge tiles that already exist
    before = _tiles(conn, partial)
    rows = []
    for tile, added in grown.items():
        head = before.get(tile, b"")
        if len(head) != first[tile] * HASH_SIZE:
            raise StoredDataDamaged(
                damaged(
                    f"tile (level {tile.level}, index {tile.index}): it does not end "
                    "where the tree does"
                )
            )
        rows.append((tile.level, tile.index, head + b"".join(added)))
    if rows:
        upsert_many(conn, "tlog_tiles", ("level", "idx"), ("hashes",), rows)
    conn.execute(
        tlog_checkpoints.insert().values(
            size=size, root=root, note=note, created_at=now_ms, term=term
        )
    )


def read_nodes(conn: Connection, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
    """The stored hashes of ``ids`` (a node not stored yet is left out)."""
    places = [locate(n) for n in ids]
    tiles = _tiles(conn, list({t for t, _ in places}))
    return _cut(ids, places, tiles)


def _cut(
    ids: Sequence[NodeId], places: Sequence[tuple[TileId, int]], tiles: dict[TileId, bytes]
) -> dict[NodeId, bytes]:
    found: dict[NodeId, bytes] = {}
    for node, (tile, position) in zip(ids, places, strict=True):
        stored = tiles.get(tile)
        h = None if stored is None else hash_at(stored, position)
        if h is not None:
            found[node] = h
    return found


def _tiles(conn: Connection, wanted: Sequence[TileId]) -> dict[TileId, bytes]:
    if len(wanted) > _MAX_TERMS:  # SQLite refuses an expression tree over 1,000 deep
        found: dict[TileId, bytes] = {}
        for start in range(0, len(wanted), _MAX_TERMS):
            found.update(_tiles(conn, wanted[start : start + _MAX_TERMS]))
        return found
    if not wanted:
        return {}
    raw = plain_sqlite(conn)
    if raw is not None:
        return _sqlite_tiles(raw, wanted)
    params: dict[str, int] = {}
    for k, t in enumerate(wanted):
        params[f"l{k}"], params[f"i{k}"] = t.level, t.index
    rows = conn.execute(_tiles_query(len(wanted)), params)
    return {
        TileId(int(r[0]), int(r[1])): _blob(r[2], f"tile (level {r[0]}, index {r[1]})", "hashes")
        for r in rows
    }


def _sqlite_tiles(raw: sqlite3.Connection, wanted: Sequence[TileId]) -> dict[TileId, bytes]:
    """``_tiles`` on the plain sqlite3 connection, without SQLAlchemy's per-statement work
    (about 200 of the 330 µs a proof's reads took when it still read one row per node)."""
    params = [x for t in wanted for x in t]
    rows = raw.execute(_SQLITE_TILES[0] + " OR ".join([_SQLITE_TILES[1]] * len(wanted)), params)
    # plain (level, index) tuples: equal to, and hashed as, the TileId keys callers use
    found = {}
    for level, index, h in rows:
        if type(h) is not bytes:
            h = _blob(h, f"tile (level {level}, index {index})", "hashes")
        found[level, index] = h
    return cast(dict[TileId, bytes], found)


def _proof_rows(
    conn: Connection, sizes: list[int], wanted: list[NodeId]
) -> tuple[set[int], dict[NodeId, bytes]]:
    raw = plain_sqlite(conn)
    if raw is not None:
        marks = ", ".join("?" * len(sizes))
        known = {r[0] for r in raw.execute(f"{_SQLITE_SIZES} ({marks})", sizes)}
    else:
        known = {int(r[0]) for r in conn.execute(_SIZES, {"sizes": sizes})} if sizes else set()
    return known, read_nodes(conn, wanted)


_MAX_TERMS = 500  # tiles per statement (a batch of proofs at a million entries needs ~200)
_SQLITE_SIZES = "SELECT size FROM tlog_checkpoints WHERE size IN"
_SQLITE_TILES = ("SELECT level, idx, hashes FROM tlog_tiles WHERE ", "(level = ? AND idx = ?)")


_SIZES = select(tlog_checkpoints.c.size).where(
    tlog_checkpoints.c.size.in_(bindparam("sizes", expanding=True))
)


@functools.cache
def _tiles_query(n: int) -> TextClause:
    """``(level, idx) = (:l0, :i0) OR ...`` for ``n`` tiles: the primary key serves each
    term, and one statement per count keeps SQLAlchemy's compiled cache warm."""
    terms = " OR ".join(f"(level = :l{k} AND idx = :i{k})" for k in range(n))
    return text(f"SELECT level, idx, hashes FROM tlog_tiles WHERE {terms}")
