"""Where nodes live in tiles: the positions follow the order the tree completes nodes, so
a tile only ever grows at its end, and every node has its own place."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.tlog import CompactRange, NodeId, leaf_hash
from clearpost.core.tlog.tiles import (
    TILE_NODES,
    TILE_WIDTH,
    TileId,
    hash_at,
    locate,
    nodes_below,
    width_at,
)

SIZE = 66_000  # past 65,536 leaves: tiles on three tile levels, the top one partial


def test_each_tile_grows_at_its_end_in_the_order_nodes_complete() -> None:
    tree, length = CompactRange(), Counter[TileId]()
    for i in range(SIZE):
        for node, _ in tree.append(leaf_hash(i.to_bytes(4, "big"))):
            tile, position = locate(node)
            assert position == length[tile], (node, tile)
            length[tile] += 1
    assert {t.level for t in length} == {0, 1, 2}
    for tile, count in length.items():
        assert count == nodes_below(width_at(tile, SIZE)), tile


def test_a_full_tile_holds_its_eight_levels() -> None:
    assert nodes_below(TILE_WIDTH) == TILE_NODES == 510
    assert [nodes_below(w) for w in range(1, 9)] == [1, 3, 4, 7, 8, 10, 11, 15]
    assert locate(NodeId(0, 0)) == (TileId(0, 0), 0)
    assert locate(NodeId(7, 1)) == (TileId(0, 0), TILE_NODES - 1)  # the last one completed
    assert locate(NodeId(8, 0)) == (TileId(1, 0), 0)  # a tile's root starts the one above
    assert locate(NodeId(0, 256)) == (TileId(0, 1), 0)


def test_width_at_a_size() -> None:
    assert width_at(TileId(0, 0), 0) == 0
    assert width_at(TileId(0, 0), 5) == 5
    assert width_at(TileId(0, 1), 300) == 44
    assert width_at(TileId(0, 0), 300) == TILE_WIDTH
    assert width_at(TileId(1, 0), 300) == 1  # one complete level-8 node
    assert width_at(TileId(1, 0), 255) == 0


def test_hash_at_reads_within_the_stored_bytes_only() -> None:
    stored = bytes(range(32)) + bytes(32 * [7])
    assert hash_at(stored, 0) == bytes(range(32))
    assert hash_at(stored, 1) == bytes(32 * [7])
    assert hash_at(stored, 2) is None


@settings(max_examples=500, deadline=None)
@given(level=st.integers(0, 40), index=st.integers(0, 2**24))
def test_every_node_has_its_own_place(level: int, index: int) -> None:
    node = NodeId(level, index)
    tile, position = locate(node)
    assert tile.level == level // 8 and 0 <= position < TILE_NODES
    # a tile holds exactly the nodes over its 256 bottom nodes, one per position
    sub = level % 8
    assert tile.index == index >> (8 - sub)
    neighbours = [
        NodeId(level, i) for i in range(tile.index << (8 - sub), (tile.index + 1) << (8 - sub))
    ]
    assert len({locate(n)[1] for n in neighbours}) == len(neighbours)
    # the node is complete exactly when the tile's bottom width covers it
    end = ((index + 1) << sub) - (tile.index << 8)
    assert nodes_below(end) > position
    assert nodes_below(end - 1) <= position if end > 1 else position == 0
