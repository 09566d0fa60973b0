"""Migration 0006 moves a log's node hashes from one row per node into tiles, and back.

A log written before tiles must serve the same node hashes after the upgrade (its proofs
and roots depend on every one), and the sequencer must go on growing it from there.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from clearpost.core.tlog import MemoryTree, NodeId, leaf_hash
from clearpost.core.tlog.tiles import TileId
from clearpost.storage.db import Database
from clearpost.storage.migrations import alembic_config, upgrade
from clearpost.storage.sql import tlog as log_sql

SIZE = 600  # nodes on two tile levels; the upper tile and the last bottom one partial


def _tree(size: int) -> MemoryTree:
    return MemoryTree(leaf_hash(i.to_bytes(4, "big")) for i in range(size))


def _every_node(tree: MemoryTree) -> list[NodeId]:
    return [
        NodeId(level, idx)
        for level in range(tree.size.bit_length())
        for idx in range(tree.size >> level)
    ]


async def _alembic(db: Database, command: str, revision: str) -> None:
    def run(conn: Connection) -> None:
        from alembic import command as commands

        getattr(commands, command)(alembic_config(conn), revision)

    async with db.engine.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


async def test_nodes_move_into_tiles_and_back(db_url: str) -> None:
    tree = _tree(SIZE)
    nodes = _every_node(tree)
    db = Database(db_url)
    try:
        await upgrade(db, "0005")
        async with db.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO tlog_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                [{"l": n.level, "i": n.index, "h": tree.read(n)} for n in nodes],
            )
        await upgrade(db)  # 0006: into tiles
        async with db.engine.connect() as conn:
            stored = await conn.run_sync(log_sql.read_nodes, nodes)
            tiles = (await conn.execute(text("SELECT count(*) FROM tlog_tiles"))).scalar_one()
        assert stored == {n: tree.read(n) for n in nodes}
        assert tiles == 3 + 1  # bottom tiles 0, 1 and 2 (partial); one on the level above

        # the sequencer grows the migrated tiles where they end
        bigger = _tree(SIZE + 300)
        added = [(n, h) for i in range(SIZE, SIZE + 300) for n, h in _completed(bigger, i)]
        async with db.engine.begin() as conn:
            await conn.run_sync(
                log_sql.store_integration, added, bigger.size, b"r" * 32, "n", 0, None
            )
        async with db.engine.connect() as conn:
            every = _every_node(bigger)
            assert await conn.run_sync(log_sql.read_nodes, every) == {
                n: bigger.read(n) for n in every
            }

        await _alembic(db, "downgrade", "0005")  # and back to one row per node
        async with db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT level, idx, hash FROM tlog_nodes"))
            back = {NodeId(int(r[0]), int(r[1])): bytes(r[2]) for r in rows}
        assert back == {n: bigger.read(n) for n in _every_node(bigger)}
    finally:
        await db.close()


def _completed(tree: MemoryTree, index: int) -> list[tuple[NodeId, Any]]:
    """The nodes that appending leaf ``index`` completed, leaf first (as CompactRange)."""
    out, level, idx = [], 0, index
    while True:
        out.append((NodeId(level, idx), tree.read(NodeId(level, idx))))
        if not idx & 1:
            return out
        level, idx = level + 1, idx >> 1


async def test_reading_more_tiles_than_one_statement_takes(db_url: str) -> None:
    """A batch of proofs can ask for hundreds of tiles; SQLite refuses an OR of over 1,000
    terms, so the look-up is split (and still finds every stored tile)."""
    tree = _tree(SIZE)
    db = Database(db_url)
    try:
        await upgrade(db)
        added = [(n, h) for i in range(SIZE) for n, h in _completed(tree, i)]
        async with db.engine.begin() as conn:
            await conn.run_sync(log_sql.store_integration, added, SIZE, b"r" * 32, "n", 0, None)
        wanted = [TileId(0, i) for i in range(1200)] + [TileId(1, 0)]
        found = await db.run_read(log_sql._tiles, wanted)
        assert sorted(found) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    finally:
        await db.close()
