"""The tile audit with helper processes (``audit/tilehelper.py``) against a real server:
the helpers take the full level-0 tiles before the audit claims any, so every verdict below
comes through the helpers' reports and what the audit reads again itself."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearpost.audit.errors import BadProof, EntryMismatch, MissingEntries
from clearpost.audit.http import LogClient
from clearpost.audit.tileaudit import TileTree, read_tree, verify_tree
from clearpost.audit.tilehelper import _COUNTER, TileHelper
from clearpost.core.tlog import Checkpoint, NodeId, Verifier, open_checkpoint
from clearpost.core.tlog.tiles import locate
from tests.support.biglog import ORIGIN, populate
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.timeout(120)

ENTRIES = 1300  # five full level-0 tiles (two groups the helpers take) and a partial one


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path]]:
    data = tmp_path / "srv"
    path = data / "clearpost.db"
    populate(data, f"sqlite+aiosqlite:///{path}", ENTRIES)
    server = start_server(data, f"sqlite+aiosqlite:///{path}")
    try:
        yield server, path
    finally:
        server.stop()


class Scan:
    marker = b'"device"'  # in every entry: each helper tile's entries come back

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def __call__(self, first: int, bodies: list[bytes]) -> None:
        self.seen[first] = len(bodies)


async def _checkpoint(url: str) -> Checkpoint:
    """The log's checkpoint, verified under its key."""
    client = LogClient(url)
    try:
        key = await client.key()
        cp, _ = open_checkpoint(
            await client.checkpoint(), [Verifier.from_vkey(key.vkey)], origin=ORIGIN
        )
    finally:
        client.close()
    return cp


async def _read(url: str, size: int, helped: bool) -> tuple[TileTree, Scan]:
    scan = Scan()
    helper = TileHelper.start(url, Scan.marker, 2) if helped else None
    client = LogClient(url)
    try:
        if helper is not None:  # let the helper take every group of full tiles first
            deadline = time.monotonic() + 30
            while _COUNTER.unpack_from(helper._shared)[0] < (size // 256) // 2:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        tree = await read_tree(client, size, parallel=4, entries=scan, helper=helper)
    finally:
        client.close()
        if helper is not None:
            helper.close()
    return tree, scan


def _tamper(path: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(path) as db:
        db.execute(sql, args)


async def test_helpers_give_the_same_tree_as_one_process(
    served: tuple[ServerProcess, Path],
) -> None:
    server, _ = served
    cp = await _checkpoint(server.url)
    alone, scan_alone = await _read(server.url, cp.size, helped=False)
    helped, scan_helped = await _read(server.url, cp.size, helped=True)
    verify_tree(helped, cp, "", None)
    assert helped.ours_root(cp.size) == alone.ours_root(cp.size) == cp.root_hash
    assert helped.edge().hashes == alone.edge().hashes
    assert (helped.nodes_checked, helped.tiles_read, helped.bundles_read) == (
        alone.nodes_checked,
        alone.tiles_read,
        alone.bundles_read,
    )
    assert scan_helped.seen == scan_alone.seen  # every bundle's entries, helpers' too
    assert len(scan_helped.seen) == (cp.size + 255) // 256


async def test_a_changed_node_in_a_helpers_tile_is_named(
    served: tuple[ServerProcess, Path],
) -> None:
    server, path = served
    cp = await _checkpoint(server.url)
    tile, position = locate(NodeId(3, 40))  # in tile 0/1: a helper's
    with sqlite3.connect(path) as db:
        (hashes,) = db.execute(
            "SELECT hashes FROM tlog_tiles WHERE level = 0 AND idx = ?", (tile.index,)
        ).fetchone()
    damaged = hashes[: 32 * position] + b"\x07" * 32 + hashes[32 * position + 32 :]
    _tamper(path, "UPDATE tlog_tiles SET hashes = ? WHERE level = 0 AND idx = ?", damaged, 1)
    tree, _ = await _read(server.url, cp.size, helped=True)
    with pytest.raises(BadProof, match="level 3, index 40 "):
        verify_tree(tree, cp, "", None)


async def test_a_changed_or_missing_entry_in_a_helpers_tile_is_named(
    served: tuple[ServerProcess, Path],
) -> None:
    server, path = served
    cp = await _checkpoint(server.url)
    _tamper(path, "UPDATE tlog_entries SET body = ? WHERE idx = ?", b'{"x":1}', 700)
    tree, _ = await _read(server.url, cp.size, helped=True)
    with pytest.raises(EntryMismatch, match="entry 700 was changed"):
        verify_tree(tree, cp, "", None)
    _tamper(path, "DELETE FROM tlog_entries WHERE idx = ?", 300)
    with pytest.raises(MissingEntries, match="entry 300 is missing"):
        await _read(server.url, cp.size, helped=True)  # the first failure in tile order
