"""The log as C2SP tlog-tiles: hash tiles and entry bundles, read from what is stored.

Each request reads the database: a full tile never changes, but it is served from the
stored row every time — not from a cache in the server — for the same reason proofs are:
what anyone is shown must be what proofs are computed from, so a damaged or rolled-back
database shows at once to an auditor reading tiles (``clearpost audit verify``). The
cost is kept low the way the proof API keeps it low: tile requests that arrive while a
read is in flight are read together, in one transaction (one thread hop) for up to 64,
and a tile is one row by primary key. Caching belongs in front of the server: full tiles
carry long-lived, immutable cache headers and strong ETags (``routes/tiles.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from clearpost.core.errors import NotFound
from clearpost.core.tlog.c2sp_tiles import TileRequest, bottom_hashes, encode_bundle, stored_width
from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.tiles import TILE_WIDTH, TileId, nodes_below
from clearpost.server.services.batcher import Batcher
from clearpost.storage.db import Database
from clearpost.storage.sql import tlog_tiles as store

TILE_READ_BATCH = 64


@dataclass(frozen=True, slots=True)
class StoredTile:
    """A stored tile's bytes (None when not stored), or an entry bundle's (encoded as read)
    and the log's size then."""

    hashes: bytes | None
    bundle: bytes | None
    size: int


class TileService:
    """Serves tlog-tiles resources and the stored tiles they are cut from."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: Batcher[TileRequest, StoredTile] = Batcher(
            self._read, max_batch=TILE_READ_BATCH
        )

    async def resource(self, req: TileRequest) -> bytes:
        """The bytes of a hash tile or entry bundle; ``NotFound`` when the log has none.

        A full resource exists once the tree has all 256 of its bottom nodes (entries);
        a partial one of width W once it has at least W (any W up to the current width:
        each is what the tile was, or will be cut to, at some tree size)."""
        found = await self._reads.submit(req)
        if req.level is None:
            first = req.index * TILE_WIDTH
            if first + req.width > found.size:
                raise _missing(req, "the log's latest checkpoint does not cover it yet")
            return found.bundle or b""
        cut = None if found.hashes is None else bottom_hashes(found.hashes, req.width)
        if cut is None or found.hashes is None:
            raise _missing(req, "the tree does not have that many nodes there yet")
        if req.width == TILE_WIDTH and stored_width(len(found.hashes)) < TILE_WIDTH:
            raise _missing(req, "that tile is not full yet")
        return cut

    async def stored(self, req: TileRequest) -> bytes:
        """A Clearpost extension: the stored tile itself, every node of its eight levels
        in post-order (``nodes_below(W)`` hashes), so an auditor can check each node that
        proofs are served from — not only the bottom level a C2SP hash tile shows."""
        if req.level is None:
            raise _missing(req, "entry bundles have no stored nodes")
        found = await self._reads.submit(req)
        width = stored_width(len(found.hashes or b""))
        if found.hashes is None or width < req.width:
            raise _missing(req, "the tree does not have that many nodes there yet")
        return found.hashes[: nodes_below(req.width) * HASH_SIZE]

    async def _read(self, batch: list[TileRequest]) -> list[StoredTile]:
        return await self.db.run_read(_read_batch, batch)


def _read_batch(conn: Connection, batch: Sequence[TileRequest]) -> list[StoredTile]:
    wanted = {TileId(r.level, r.index) for r in batch if r.level is not None}
    tiles = store.read_tiles(conn, sorted(wanted)) if wanted else {}
    bundles = [r for r in batch if r.level is None]
    size = store.latest_size(conn) if bundles else 0
    out = []
    for r in batch:
        if r.level is not None:
            out.append(StoredTile(tiles.get(TileId(r.level, r.index)), None, size))
            continue
        first = r.index * TILE_WIDTH
        end = min(first + r.width, size)
        bundle = encode_bundle(store.read_entries(conn, first, end)) if first < end else b""
        out.append(StoredTile(None, bundle, size))
    return out


def _missing(req: TileRequest, why: str) -> NotFound:
    kind = "entry bundle" if req.level is None else "tile"
    return NotFound(f"no such {kind}: {why}", code="tile_not_found")
