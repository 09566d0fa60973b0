"""C2SP tlog-tiles resources: canonical paths, hash tiles cut from stored tiles (and
stored tiles recomputed from hash tiles), and entry bundles."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearpost.core.tlog import CompactRange, NodeId, leaf_hash
from clearpost.core.tlog.c2sp_tiles import (
    TileRequest,
    bottom_hashes,
    decode_bundle,
    encode_bundle,
    encode_index,
    node_at,
    parse_tile_path,
    stored_width,
    tile_nodes,
    tile_path,
)
from clearpost.core.tlog.tiles import TILE_WIDTH, TileId, locate, nodes_below, width_at


def test_paths_are_the_specs_examples() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(1000) == "x001/000"
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert tile_path(2, 5, 17) == "tile/2/005.p/17"
    assert tile_path(None, 3) == "tile/entries/003"
    assert parse_tile_path("0/x001/x234/067") == TileRequest(0, 1234067, 256)
    assert parse_tile_path("entries/005.p/17") == TileRequest(None, 5, 17)
    assert parse_tile_path("63/000") == TileRequest(63, 0, 256)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "0",
        "64/000",  # levels 0..63
        "00/000",  # no leading zeros
        "-1/000",
        "0/00",  # three digits
        "0/0000",
        "0/x000/001",  # not canonical: 1 is "001"
        "0/001/002",  # all but the last element start with x
        "0/x001",  # the last does not
        "0/000.p/0",  # widths 1..255
        "0/000.p/256",
        "0/000.p/017",
        "0/000.p/",
        "0/000.p",
        "0/ 12",
        "0/１２３",  # noqa: RUF001 - non-ASCII digits
        "entries",
        "hashes/000",
    ],
)
def test_only_canonical_paths_parse(path: str) -> None:
    assert parse_tile_path(path) is None


@given(st.integers(0, 2**50), st.one_of(st.none(), st.integers(0, 63)), st.integers(1, 256))
def test_paths_round_trip(index: int, level: int | None, width: int) -> None:
    path = tile_path(level, index, width)
    assert parse_tile_path(path.removeprefix("tile/")) == TileRequest(level, index, width)


def _stored_tiles(size: int) -> tuple[dict[TileId, bytes], list[bytes]]:
    """Tiles as the sequencer stores them, and the leaf hashes."""
    tree, tiles = CompactRange(), defaultdict[TileId, bytearray](bytearray)
    leaves = [leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    for leaf in leaves:
        for node, h in tree.append(leaf):
            tile, position = locate(node)
            assert len(tiles[tile]) == 32 * position
            tiles[tile] += h
    return {t: bytes(b) for t, b in tiles.items()}, leaves


def test_hash_tiles_are_the_bottom_of_stored_tiles_and_recompute_them() -> None:
    size = 256 * 256 + 3 * 256 + 17  # three tile levels; partial tiles on each
    stored, leaves = _stored_tiles(size)
    roots: dict[int, list[bytes]] = {0: leaves}
    for level in range(3):
        below = roots[level]
        roots[level + 1] = []
        for n in range((len(below) + 255) // 256):
            tile = TileId(level, n)
            width = width_at(tile, size)
            bottom = below[256 * n : 256 * n + width]
            assert bottom_hashes(stored[tile], width) == b"".join(bottom)
            assert stored_width(len(stored[tile])) == width
            nodes, root = tile_nodes(bottom)
            assert nodes == stored[tile], tile  # every stored node, in its stored place
            if width == TILE_WIDTH:
                assert root is not None
                roots[level + 1].append(root)
            else:
                assert root is None
    assert roots[1][0] == stored[TileId(1, 0)][:32]


def test_node_at_names_each_position() -> None:
    for position in range(nodes_below(TILE_WIDTH)):
        node = node_at(2, 7, position)
        assert locate(node) == (TileId(2, 7), position)
    assert node_at(0, 0, 0) == NodeId(0, 0)


def test_bottom_hashes_refuse_a_short_tile() -> None:
    assert bottom_hashes(b"\x00" * 32 * 3, 3) is None
    assert bottom_hashes(b"\x00" * 32 * 4, 3) == b"\x00" * 96


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_bundles_round_trip(entries: list[bytes]) -> None:
    data = encode_bundle(entries)
    assert decode_bundle(data) == entries
    assert len(data) == sum(2 + len(e) for e in entries)


def test_malformed_bundles_are_refused() -> None:
    assert decode_bundle(b"\x00") is None
    assert decode_bundle(b"\x00\x05abc") is None
    assert decode_bundle(b"") == []
    with pytest.raises(ValueError):
        encode_bundle([b"x" * 65536])
    # longer than any valid entry (a damaged row) but still encodable: served as it is
    long = [b"a", b"y" * 16385, b"z" * 65535]
    assert decode_bundle(encode_bundle(iter(long))) == long
    assert encode_bundle(long)[:3] == b"\x00\x01a"
