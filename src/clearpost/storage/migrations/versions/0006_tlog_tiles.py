"""Keep the log's node hashes in tiles of eight tree levels, one row per tile.

A proof read one row per node (about 25 random rows at a million entries), and those reads
were most of what a proof cost; from tiles it reads one row per eight levels (three). The
layout is in ``clearpost.core.tlog.tiles``. The existing nodes are moved, a slice of tiles
at a time so that a big log does not have to fit in memory.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Iterator

import sqlalchemy as sa
from alembic import op

from clearpost.core.tlog import NodeId
from clearpost.core.tlog.tiles import TILE_HEIGHT, TILE_NODES, TileId, locate

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_SLICE = 256  # tiles moved per step: 65,536 leaves at the bottom level, about 30 MB


def _table(name: str, hash_column: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column(hash_column, sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )


def upgrade() -> None:
    tiles = _table("tlog_tiles", "hashes")
    tiles.create(op.get_bind())
    conn = op.get_bind()
    nodes = _table("tlog_nodes", "hash")
    tile_level = 0
    while True:
        bottom = TILE_HEIGHT * tile_level
        top = conn.execute(sa.select(sa.func.max(nodes.c.idx)).where(nodes.c.level == bottom))
        last = top.scalar_one()
        if last is None:
            break
        for first in range(0, (int(last) >> TILE_HEIGHT) + 1, _SLICE):
            rows = _tiles_of(conn, nodes, tile_level, first, first + _SLICE)
            if rows:
                conn.execute(tiles.insert(), rows)
        tile_level += 1
    op.drop_table("tlog_nodes")


def _tiles_of(
    conn: sa.Connection, nodes: sa.Table, tile_level: int, first: int, end: int
) -> list[dict[str, object]]:
    """The tiles ``[first, end)`` of ``tile_level``, built from their stored nodes."""
    placed: dict[TileId, dict[int, bytes]] = {}
    for sub in range(TILE_HEIGHT):
        shift = TILE_HEIGHT - sub
        level = TILE_HEIGHT * tile_level + sub
        found = conn.execute(
            sa.select(nodes.c.idx, nodes.c.hash).where(
                nodes.c.level == level, nodes.c.idx >= first << shift, nodes.c.idx < end << shift
            )
        )
        for idx, h in found:
            tile, position = locate(NodeId(level, int(idx)))
            placed.setdefault(tile, {})[position] = bytes(h)
    rows: list[dict[str, object]] = []
    for tile, hashes in sorted(placed.items()):
        if sorted(hashes) != list(range(len(hashes))):
            raise RuntimeError(f"the log's nodes under tile {tuple(tile)} have gaps")
        joined = b"".join(hashes[p] for p in range(len(hashes)))
        rows.append({"level": tile.level, "idx": tile.index, "hashes": joined})
    return rows


def downgrade() -> None:
    conn = op.get_bind()
    nodes = _table("tlog_nodes", "hash")
    nodes.create(conn)
    tiles = _table("tlog_tiles", "hashes")
    order = list(_post_order())
    for level, idx, hashes in conn.execute(sa.select(tiles)):
        rows = []
        for position in range(len(hashes) // 32):
            sub, local = order[position]
            rows.append(
                {
                    "level": TILE_HEIGHT * int(level) + sub,
                    "idx": (int(idx) << (TILE_HEIGHT - sub)) + local,
                    "hash": bytes(hashes[32 * position : 32 * position + 32]),
                }
            )
        conn.execute(nodes.insert(), rows)
    op.drop_table("tlog_tiles")


def _post_order() -> Iterator[tuple[int, int]]:
    """(level within the tile, index within the tile) of a full tile's nodes, in order."""
    by_position = {
        locate(NodeId(sub, local))[1]: (sub, local)
        for sub in range(TILE_HEIGHT)
        for local in range(1 << (TILE_HEIGHT - sub))
    }
    assert len(by_position) == TILE_NODES
    yield from (by_position[p] for p in range(TILE_NODES))
