"""Where a stored node lives when nodes are kept in tiles of eight levels.

A tile ``TileId(level, index)`` holds the nodes of tree levels ``8*level`` to ``8*level + 7``
above the 256 nodes ``[256*index, 256*index + 256)`` of level ``8*level``: the layout of
C2SP ``tlog-tiles``, except that a tile here keeps all 510 nodes of its eight
levels, not only the bottom 256, so a proof reads at most one row per eight levels (three at
a million entries) and hashes nothing. The tile's own root is the first node of the tile
above it.

The nodes are in post-order (the order ``CompactRange`` completes them), so a tile whose
bottom level holds ``w`` nodes is exactly the first ``nodes_below(w)`` hashes of the full
tile: the sequencer only ever appends to the right-edge tile of each level, and a full
tile never changes.
"""

from __future__ import annotations

from typing import NamedTuple

from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.nodes import NodeId

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # nodes on a tile's bottom level
TILE_NODES = 2 * TILE_WIDTH - 2  # all its levels: 256 + 128 + ... + 2


class TileId(NamedTuple):
    level: int  # tree levels 8*level .. 8*level + 7
    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nothing here uses)


def nodes_below(width: int) -> int:
    """How many of a tile's nodes lie within its first ``width`` bottom nodes (0..256)."""
    return 2 * width - width.bit_count() - (width >> TILE_HEIGHT)


def locate(node: NodeId) -> tuple[TileId, int]:
    """The tile holding ``node`` and the node's position in it (in hashes, not bytes)."""
    level, index = node
    sub = level % TILE_HEIGHT
    shift = TILE_HEIGHT - sub
    end = ((index & ((1 << shift) - 1)) + 1) << sub  # one past its last bottom node
    tops = min((end & -end).bit_length() - 1, TILE_HEIGHT - 1)  # nodes ending at ``end``
    return TileId(level // TILE_HEIGHT, index >> shift), nodes_below(end) - 1 - tops + sub


def width_at(tile: TileId, size: int) -> int:
    """How many bottom nodes ``tile`` has in a tree of ``size`` leaves (0..256)."""
    bottom = size >> (TILE_HEIGHT * tile.level)  # complete nodes on the tile's bottom level
    return max(0, min(TILE_WIDTH, bottom - tile.index * TILE_WIDTH))


def hash_at(tile_hashes: bytes, position: int) -> bytes | None:
    """The hash at ``position`` of a stored tile, or None when the tile is shorter."""
    start = position * HASH_SIZE
    end = start + HASH_SIZE
    return tile_hashes[start:end] if end <= len(tile_hashes) else None
