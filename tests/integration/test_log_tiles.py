"""The log's C2SP tlog-tiles endpoints on a real server: what a tile client sees."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from clearpost.audit.errors import ServerRefused
from clearpost.audit.http import LogClient
from clearpost.audit.rawget import RawGetter
from clearpost.core.tlog import Verifier, leaf_hash, open_checkpoint, root_from_leaf_hashes
from clearpost.core.tlog.c2sp_tiles import decode_bundle, tile_nodes, tile_path
from tests.support.biglog import ORIGIN, populate
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def big(tmp_path: Path) -> Iterator[ServerProcess]:
    data = tmp_path / "srv"
    database = f"sqlite+aiosqlite:///{data / 'clearpost.db'}"
    populate(data, database, 600)
    server = start_server(data, database)
    try:
        yield server
    finally:
        server.stop()


async def test_tiles_bundles_and_checkpoint_as_a_tile_client_sees_them(
    big: ServerProcess,
) -> None:
    try:
        async with httpx.AsyncClient(base_url=big.url + "/log", timeout=30) as log:
            vkey = (await log.get(big.url + "/v1/log/key")).json()["vkey"]
            r = await log.get("/checkpoint")
            assert r.status_code == 200
            assert r.headers["content-type"] == "text/plain; charset=utf-8"
            assert r.headers["cache-control"] == "public, max-age=2"
            cp, _ = open_checkpoint(r.text, [Verifier.from_vkey(vkey)], origin=ORIGIN)
            size = cp.size
            assert 600 <= size < 768

            leaves: list[bytes] = []
            for n in range((size + 255) // 256):
                width = min(256, size - 256 * n)
                bundle = await log.get("/" + tile_path(None, n, width))
                assert bundle.status_code == 200, bundle.text
                assert bundle.headers["content-type"] == "application/octet-stream"
                entries = decode_bundle(bundle.content)
                assert entries is not None and len(entries) == width
                hashes = (await log.get("/" + tile_path(0, n, width))).content
                assert hashes == b"".join(leaf_hash(e) for e in entries)
                leaves += [leaf_hash(e) for e in entries]
            assert root_from_leaf_hashes(leaves) == cp.root_hash

            # Full tiles are immutable and cacheable; partial ones short-lived.
            full = await log.get("/tile/0/000")
            assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
            etag = full.headers["etag"]
            again = await log.get("/tile/0/000", headers={"if-none-match": etag})
            assert again.status_code == 304 and again.content == b""
            partial = await log.get(f"/tile/0/002.p/{size - 512}")
            assert partial.headers["cache-control"] == "public, max-age=60"
            # The level-1 tile holds the roots of the full level-0 tiles.
            level1 = (await log.get("/tile/1/000.p/2")).content
            assert level1[:32] == tile_nodes(leaves[:256])[1]
            # The stored tile (Clearpost extension) holds every node of its eight levels.
            stored = (await log.get("/nodes/0/000")).content
            assert stored == tile_nodes(leaves[:256])[0]

            # What does not exist (yet) is a 404 problem; so is every non-canonical path.
            for path in (
                "/tile/0/002",  # not full yet
                f"/tile/0/002.p/{size - 512 + 1}",  # wider than the tree
                "/tile/entries/002",
                "/tile/0/003.p/1",
                "/tile/1/000",
                "/tile/0/x000/000",
                "/tile/0/0",
                "/tile/64/000",
                "/tile/0/000.p/256",
                "/tile/0/000.p/0",
                "/tile/entries",
                "/nodes/entries/000",
            ):
                r = await log.get(path)
                assert r.status_code == 404, path
                assert r.json()["code"] == "tile_not_found"
                assert r.headers["cache-control"] == "no-store"
            assert hashlib.sha256(full.content).hexdigest()[:32] in etag

        # The auditor's tile fetcher keeps its connections alive, and pipelines: several
        # requests written at once on one connection are answered in order.
        getter = RawGetter(big.url, 2)
        try:
            for n in range(3):
                status, body = await getter.get(f"/log/tile/0/00{n % 2}")
                assert status == 200 and len(body) == 8192
            many = await getter.get_many(
                ["/log/tile/entries/000", "/log/nodes/0/000", "/log/tile/0/009", "/log/tile/0/001"]
            )
            assert [status for status, _ in many] == [200, 200, 404, 200]
            assert decode_bundle(many[0][1]) is not None
            assert many[1][1] == tile_nodes(leaves[:256])[0]
            assert many[3][1] == b"".join(leaves[256:512])
            assert getter.connections_opened == 1
        finally:
            getter.close()
    finally:
        big.stop()


async def test_a_log_client_built_on_a_url_gets_everything_without_httpx(
    big: ServerProcess,
) -> None:
    """What ``clearpost audit verify`` uses: every GET on ``RawGetter``'s connections (query
    strings, JSON, 4xx problems), on the same connections as its tiles."""
    client = LogClient(big.url)
    try:
        key = await client.key()
        note = await client.checkpoint()
        cp, _ = open_checkpoint(note, [Verifier.from_vkey(key.vkey)], origin=ORIGIN)
        bodies = await client.entries(3, 7)
        assert [leaf_hash(b) for b in bodies] == [
            (await client.tile("tile/0/000"))[32 * i : 32 * i + 32] for i in range(3, 7)
        ]
        assert len(await client.inclusion(5, cp.size)) > 0
        with pytest.raises(ServerRefused) as refused:
            await client.inclusion(cp.size, cp.size)
        assert (refused.value.status, refused.value.problem) == (422, "invalid_range")
        assert client._raw is not None and client._raw.connections_opened == 1
    finally:
        client.close()
