"""Auditing the whole tree from tiles: every entry, and every stored node proofs come from.

The log serves its entries as C2SP entry bundles and its stored tiles (all nodes of
eight tree levels, ``/log/nodes/...``) as they are in its database, the rows its
inclusion and consistency proofs are computed from. The auditor re-hashes every entry,
recomputes every tile from the level below (``tile_nodes``) and compares it, byte for
byte, with the stored tile it was served. So one changed entry or one changed node
anywhere in the tree is caught on every run, not with the chance of a sample — and it
costs one request per 256 entries (two: the bundle and its tile) instead of a proof.

When something differs, the failure says what, from the same data:

- our root is the signed root, but a stored node differs: the data is intact and the
  log serves broken proofs through that node (``BadProof``, the node named);
- our root is not the signed root: if the log's stored tree at the size verified last
  time does not give the root verified then, the log rewrote history (``Fork``); else an
  entry changed (``EntryMismatch``, the entry named when the lowest differing node is a
  leaf) or the stored tree disagrees with itself (the subtree named);
- a previously verified size whose root our entries no longer give: ``Fork``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from clearpost.audit.errors import (
    AuditFailure,
    BadProof,
    EntryMismatch,
    Fork,
    LogUnavailable,
    MissingEntries,
    ServerRefused,
)
from clearpost.audit.http import LogClient
from clearpost.core.tlog import Checkpoint, CompactRange, NodeId, edge_nodes
from clearpost.core.tlog.c2sp_tiles import decode_bundle, node_at, tile_nodes, tile_path
from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.nodes import fold_right, subtree_nodes
from clearpost.core.tlog.tiles import TILE_HEIGHT, TILE_NODES, TILE_WIDTH, TileId, locate, width_at

if TYPE_CHECKING:
    from clearpost.audit.tilehelper import TileHelper

__all__ = ["EntrySink", "TileTree", "read_tree", "verify_tree"]

T = TypeVar("T")
_MAX_DIFFERENCES = 64  # differing nodes remembered (the lowest one is what is reported)
_GROUP = 2  # tiles (and their bundles) fetched together, pipelined on one connection
_Fetched = tuple[list[bytes] | None, bytes, bytes] | Exception
"""Per tile: the bundle's entries (None above level 0), the bundle as read, the stored tile."""


class EntrySink(Protocol):
    """Told of the entries an audit read (the key-directory audit's ``EpochScan``)."""

    marker: bytes
    """From tiles, only the entries of bundles holding these bytes are passed (b"": all)."""

    def __call__(self, first: int, bodies: list[bytes]) -> None:
        """The bodies of the entries from index ``first`` on (pages in any order)."""


@dataclass
class TileTree:
    """What reading a tree of ``size`` from tiles found."""

    size: int
    ours: dict[TileId, bytes] = field(default_factory=dict)
    """Recomputed tiles kept: those the sizes of interest need for their roots."""
    served: dict[TileId, bytes] = field(default_factory=dict)
    """Served tiles kept: the same ones, and every one that differs from ours."""
    differing: list[NodeId] = field(default_factory=list)
    nodes_checked: int = 0
    tiles_read: int = 0
    bundles_read: int = 0

    def ours_root(self, size: int) -> bytes:
        return fold_right([_node(self.ours, n) or b"" for n in subtree_nodes(0, size)])

    def served_root(self, size: int) -> bytes | None:
        hashes = [_node(self.served, n) for n in subtree_nodes(0, size)]
        return None if any(h is None for h in hashes) else fold_right([h or b"" for h in hashes])

    def edge(self) -> CompactRange:
        """Our right edge of the whole tree (the next audit's starting point)."""
        return CompactRange.from_hashes(
            self.size, [_node(self.ours, n) or b"" for n in edge_nodes(self.size)]
        )


def _node(tiles: dict[TileId, bytes], node: NodeId) -> bytes | None:
    tile, position = locate(node)
    data = tiles.get(tile)
    if data is None or len(data) < (position + 1) * HASH_SIZE:
        return None
    return data[position * HASH_SIZE : (position + 1) * HASH_SIZE]


def _tiles_for(sizes: Iterable[int]) -> set[TileId]:
    return {locate(n)[0] for s in sizes if s > 0 for n in subtree_nodes(0, s)}


async def read_tree(
    client: LogClient,
    size: int,
    *,
    keep_sizes: Iterable[int] = (),
    parallel: int = 8,
    progress: Callable[[int], None] | None = None,
    entries: EntrySink | None = None,
    helper: TileHelper | None = None,
) -> TileTree:
    """Fetch every entry bundle and stored tile of a tree of ``size`` and check each
    stored node against the one recomputed from the entries.

    ``entries``, when given, is given the bodies of every bundle read that holds its
    marker (the key-directory audit looks for its epochs there). ``helper``: processes
    checking full level-0 tiles alongside (``tilehelper.py``); this reads every tile
    they did not report as in order.

    Raises ``MissingEntries`` when a bundle lacks entries the size covers, ``BadProof``
    when the log does not serve a stored tile the size needs (the first such tile in
    order); differences are recorded in ``TileTree.differing`` for ``verify_tree``.
    """
    tree = TileTree(size)
    keep = _tiles_for([size, *keep_sizes])
    advance = progress or (lambda _: None)
    level, below = 0, list[bytes]()
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        tiles = (count + TILE_WIDTH - 1) // TILE_WIDTH
        roots: dict[int, bytes] = {}

        def check(
            n: int,
            fetched: _Fetched,
            level: int = level,
            below: list[bytes] = below,
            roots: dict[int, bytes] = roots,
        ) -> None:
            """Judge tile ``n`` of ``level`` as fetched (raising its failure)."""
            if isinstance(fetched, Exception):
                raise fetched
            bodies, bundle, served = fetched
            tile = TileId(level, n)
            width = width_at(tile, size)
            if bodies is not None:
                tree.bundles_read += 1
                bottom = leaf_hashes(bodies)
                if len(bottom) < width:
                    raise _missing(n, bottom, served, size)
                if entries is not None and entries.marker in bundle:
                    entries(n * TILE_WIDTH, bodies[:width])
                advance(width)
            else:
                bottom = below[n * TILE_WIDTH : n * TILE_WIDTH + width]
            ours, root = tile_nodes(bottom)
            tree.tiles_read += 1
            tree.nodes_checked += len(ours) // HASH_SIZE
            if root is not None:
                roots[n] = root
            if tile in keep:
                tree.ours[tile], tree.served[tile] = ours, served
            if served != ours:
                tree.ours[tile], tree.served[tile] = ours, served
                _record(tree, tile, ours, served)

        def fetch(group: Sequence[int], level: int = level) -> Awaitable[list[_Fetched]]:
            return fetch_tiles(client, size, level, group)

        if level == 0 and helper is not None:

            def usable(n: int) -> bool:  # full at this size, and not kept: read here
                return width_at(TileId(0, n), size) == TILE_WIDTH and TileId(0, n) not in keep

            done = await _with_helper(helper, tiles, usable, fetch, check, parallel)
            for n, (root, bodies) in done.items():  # tiles the helpers found in order
                tree.bundles_read += 1
                tree.tiles_read += 1
                tree.nodes_checked += TILE_NODES
                roots[n] = root
                if entries is not None and bodies is not None:
                    entries(n * TILE_WIDTH, bodies)
                advance(TILE_WIDTH)
        else:
            groups = [
                range(g * _GROUP, min(g * _GROUP + _GROUP, tiles))
                for g in range((tiles + _GROUP - 1) // _GROUP)
            ]
            async with contextlib.aclosing(pipelined(fetch, groups, parallel)) as all_tiles:
                async for group, fetched in all_tiles:
                    for n, item in zip(group, fetched, strict=True):
                        check(n, item)
        below = [roots[n] for n in range(count // TILE_WIDTH)]
        level += 1
    return tree


def leaf_hashes(bodies: list[bytes]) -> list[bytes]:
    """RFC 6962 leaf hashes of entry bodies."""
    return [sha256(b"\x00" + e).digest() for e in bodies]


async def fetch_tiles(
    client: LogClient, size: int, level: int, group: Sequence[int]
) -> list[_Fetched]:
    """Tiles ``group`` of ``level`` (with their bundles on level 0), all requests
    pipelined on one connection; a failure is kept with its tile, to be raised in order."""
    widths = [width_at(TileId(level, n), size) for n in group]
    paths = []
    for n, width in zip(group, widths, strict=True):
        if not level:
            paths.append(tile_path(None, n, width))
        paths.append(_stored_path(level, n, width))
    got = iter(await client.tiles(paths))
    out: list[_Fetched] = []
    for n, width in zip(group, widths, strict=True):
        bundle = None if level else next(got)
        data = next(got)
        try:
            bodies = None if bundle is None else _bundle(bundle, n, width)
            raw = bundle if isinstance(bundle, bytes) else b""
            out.append((bodies, raw, _stored(data, level, n, width)))
        except AuditFailure as exc:
            out.append(exc)
    return out


def level0_tile(fetched: _Fetched, marker: bytes) -> tuple[bytes, list[bytes] | None] | None:
    """A helper's check of a full level-0 tile as fetched: its root and, when the bundle
    holds ``marker``, its entries; None unless everything is in order (256 entries, every
    node of the stored tile equal to the one recomputed)."""
    if isinstance(fetched, Exception):
        return None
    bodies, bundle, served = fetched
    if bodies is None or len(bodies) != TILE_WIDTH:
        return None
    ours, root = tile_nodes(leaf_hashes(bodies))
    if root is None or ours != served:
        return None
    return root, (bodies if marker in bundle else None)


async def _with_helper(
    helper: TileHelper,
    tiles: int,
    usable: Callable[[int], bool],
    fetch: Callable[[Sequence[int]], Awaitable[list[_Fetched]]],
    check: Callable[[int, _Fetched], None],
    parallel: int,
) -> dict[int, tuple[bytes, list[bytes] | None]]:
    """Level 0 with helpers: check the tiles this process claims, then every tile the
    helpers did not report as in order (or that is not ``usable`` from them), keeping the
    order of failures: the first tile that fails, in tile order, is the one raised.
    Returns the helpers' tiles to take."""
    own: set[int] = set()
    failed: tuple[int, AuditFailure] | None = None
    async with contextlib.aclosing(pipelined(fetch, helper.claims(tiles), parallel)) as mine:
        async for group, fetched in mine:
            for n, item in zip(group, fetched, strict=True):
                own.add(n)
                try:
                    check(n, item)
                except AuditFailure as exc:
                    failed = (n, exc)
                    break
            if failed is not None:
                break
    done = (await helper.results()).tiles
    end = tiles if failed is None else failed[0]
    taken = {n: got for n, got in done.items() if n < end and n not in own and usable(n)}
    redo = [[n] for n in range(end) if n not in own and n not in taken]
    async with contextlib.aclosing(pipelined(fetch, redo, parallel)) as rest:
        async for group, fetched in rest:
            check(group[0], fetched[0])
    if failed is not None:
        raise failed[1]
    return taken


def _record(tree: TileTree, tile: TileId, ours: bytes, served: bytes) -> None:
    """Remember the lowest ``_MAX_DIFFERENCES`` differing nodes (tiles may be judged out
    of order when helper processes share the work)."""
    found = [
        node_at(tile.level, tile.index, position)
        for position in range(len(ours) // HASH_SIZE)
        if ours[position * HASH_SIZE : (position + 1) * HASH_SIZE]
        != served[position * HASH_SIZE : (position + 1) * HASH_SIZE]
    ]
    tree.differing = sorted(tree.differing + found)[:_MAX_DIFFERENCES]


def _missing(n: int, leaves: list[bytes], served: bytes, size: int) -> MissingEntries:
    """Name the first entry of bundle ``n`` that the log does not serve: where its leaves
    stop matching the leaf hashes of the stored tile (or at the bundle's end)."""
    first = n * TILE_WIDTH
    for i, leaf in enumerate(leaves):
        stored = served[_leaf_position(i) * HASH_SIZE : (_leaf_position(i) + 1) * HASH_SIZE]
        if stored != leaf:
            first += i
            break
    else:
        first += len(leaves)
    return MissingEntries(
        f"entry {first} is missing: the log's signed checkpoint covers {size} entries, "
        "but its entry bundle does not hold that one",
        index=first,
    )


def _leaf_position(i: int) -> int:
    return locate(NodeId(0, i))[1]


def verify_tree(
    tree: TileTree, checkpoint: Checkpoint, note: str, prev: tuple[Checkpoint, str] | None
) -> None:
    """Judge a tree read from tiles against the signed checkpoint and the one verified
    before (``prev``: checkpoint and note); raise the failure that explains a difference.

    1. If the entries give the signed root: the entries must still give the root verified
       before (else ``Fork``), and every stored node must be the one the entries give
       (else ``BadProof``, naming the lowest node that differs).
    2. Else, if the log's stored tree does not give both the root verified before and the
       signed root, the signed tree does not extend the old one (``Fork``).
    3. Else the entries are at fault: a changed entry when the lowest differing node is a
       leaf under a stored tree that gives the signed root, else a stored tree that
       disagrees with itself over the subtree named (``EntryMismatch`` either way).
    """
    size, signed = checkpoint.size, checkpoint.root_hash
    # 1.
    old = prev[0] if prev is not None and 0 < prev[0].size <= size else None
    evidence = (prev[1], note) if prev is not None else ()
    if tree.ours_root(size) == signed:
        if old is not None and tree.ours_root(old.size) != old.root_hash:
            raise Fork(
                f"the log's tree of {size} entries does not extend the tree of {old.size} "
                f"entries it signed before: its entries 0..{old.size - 1} no longer hash to "
                "the root it signed for that size: it rewrote its history",
                evidence=evidence,
            )
        if tree.differing:
            node = min(tree.differing)
            tile, _ = locate(node)
            raise BadProof(
                f"the log's stored tree node at level {node.level}, index {node.index} "
                f"(entries {node.begin}..{min(node.end, size) - 1}, in stored tile "
                f"{tile.level}/{tile.index}) is not the hash of its entries: every "
                "inclusion or consistency proof through it fails" + _more(tree)
            )
        return
    # 2.
    if old is not None and (
        tree.served_root(old.size) != old.root_hash or tree.served_root(size) != signed
    ):
        raise Fork(
            f"the log's tree of {size} entries does not extend the tree of {old.size} "
            "entries it signed before",
            evidence=evidence,
        )
    # 3.
    lowest = min(tree.differing, default=None)
    if lowest is not None and lowest.level == 0 and tree.served_root(size) == signed:
        raise EntryMismatch(
            f"entry {lowest.index} was changed: its bytes no longer hash to the leaf the "
            f"signed checkpoint of size {size} commits to" + _more(tree),
            index=lowest.index,
        )
    where = ""
    if lowest is not None:
        where = (
            " (the log's own tree disagrees with itself over entries "
            f"{lowest.begin}..{min(lowest.end, size) - 1})"
        )
    raise EntryMismatch(
        f"the {size} entries do not hash to the signed root{where}: the log's stored tree "
        "or entries were altered"
    )


def _more(tree: TileTree) -> str:
    others = len(tree.differing) - 1
    if others <= 0:
        return ""
    more = "+" if len(tree.differing) == _MAX_DIFFERENCES else ""
    return f"; {others}{more} more stored nodes differ"


def _stored_path(level: int, n: int, width: int) -> str:
    return "nodes/" + tile_path(level, n, width).removeprefix("tile/")


def _stored(got: bytes | ServerRefused, level: int, n: int, width: int) -> bytes:
    if isinstance(got, ServerRefused):
        raise BadProof(
            f"the log does not serve its stored tile {level}/{n} (width {width}), which its "
            f"signed tree needs and proofs are computed from: {got.message}"
        ) from got
    return got


def _bundle(got: bytes | ServerRefused, n: int, width: int) -> list[bytes]:
    if isinstance(got, ServerRefused):
        if got.status == 404:
            return []
        raise got
    entries = decode_bundle(got)
    if entries is None or len(entries) > width:
        raise LogUnavailable(f"the entry bundle {n} (width {width}) is malformed")
    return entries


K = TypeVar("K")


async def pipelined(
    fetch: Callable[[K], Awaitable[T]], keys: Iterable[K], parallel: int
) -> AsyncGenerator[tuple[K, T], None]:
    """Yield ``(key, fetch(key))`` for each of ``keys`` in order, ``parallel`` in flight
    (``keys`` is read only as fetches are started: it may be a claim on shared work)."""
    pending: list[tuple[K, asyncio.Task[T]]] = []
    more = iter(keys)
    try:
        while True:
            while len(pending) < parallel and (key := next(more, _END)) is not _END:
                pending.append((key, asyncio.ensure_future(fetch(key))))
            if not pending:
                return
            key, task = pending.pop(0)
            yield key, await task
    finally:
        for _, task in pending:
            task.cancel()
        await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


_END: Any = object()
