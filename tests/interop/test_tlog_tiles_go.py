"""An independent reader of the log's C2SP tlog-tiles: a Go program built only on Debian's
``golang.org/x/mod/sumdb/note`` and ``sumdb/tlog`` (``tlogreader/main.go``), run against a
real ``clearpost serve``. It verifies the checkpoint's signature, recomputes the root from
every entry bundle, checks the hash tiles against the root with sumdb's TileHashReader,
and checks inclusion and consistency proofs assembled from the tiles.

Go is installed by ``.ci/run`` (Debian's ``golang`` and ``golang-golang-x-mod-dev``);
without it the test skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from clearpost.core.tlog import Verifier, open_checkpoint
from tests.support import api
from tests.support.biglog import ORIGIN, populate
from tests.support.server import start_server

HERE = Path(__file__).resolve().parent
GOPATH = Path("/usr/share/gocode")  # Debian's golang-golang-x-mod-dev
SUMDB = GOPATH / "src/golang.org/x/mod/sumdb/tlog"


def build_reader(out: Path) -> Path:
    """Build tlogreader offline against Debian's packaged x/mod (GOPATH mode)."""
    go = shutil.which("go")
    if go is None or not SUMDB.is_dir():
        missing = "go" if go is None else str(SUMDB)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} is missing: .ci/run installs golang golang-golang-x-mod-dev")
        pytest.skip(f"{missing} is missing (apt-get install golang golang-golang-x-mod-dev)")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out.parent / "gocache"),
        "GOFLAGS": "",
    }
    binary = out / "tlogreader"
    subprocess.run(
        [go, "build", "-o", str(binary), str(HERE / "tlogreader" / "main.go")],
        check=True,
        env=env,
        timeout=240,
    )
    return binary


async def _started(url: str) -> None:
    """Wait for the server's own start-up entries (the scope catalogue, appended before it
    listens, and the key directory's first epoch): its first sequencer step signs both in
    with epoch 0, and after it the log is still until something happens. Read before it,
    the checkpoint could be older than the one the Go reader fetches."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for _ in range(200):
            if (await client.get("/v1/keydir/epochs/0")).status_code == 200:
                return
            await asyncio.sleep(0.05)
    raise AssertionError("the key directory published no epoch within 10 s of the start")


async def _checkpoint(url: str) -> tuple[str, int, str]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        vkey = (await client.get("/v1/log/key")).json()["vkey"]
        note = (await client.get("/log/checkpoint")).text
    cp, _ = open_checkpoint(note, [Verifier.from_vkey(vkey)], origin=ORIGIN)
    return vkey, cp.size, base64.b64encode(cp.root_hash).decode()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_go_sumdb_reads_and_verifies_the_logs_tiles(tmp_path: Path) -> None:
    reader = build_reader(tmp_path)
    data = tmp_path / "srv"
    database = f"sqlite+aiosqlite:///{data / 'clearpost.db'}"
    # Past 65,536 entries: hash tiles on three levels, partial tiles on each.
    first = populate(data, database, 66_000 + 123)
    srv = start_server(data, database)
    try:
        asyncio.run(_started(srv.url))
        vkey, size, root = asyncio.run(_checkpoint(srv.url))
        assert size == first + 2  # the scope catalogue and the key directory's epoch 0

        def run(*extra: str) -> str:
            done = subprocess.run(
                [str(reader), "-url", srv.url + "/log", "-vkey", vkey, *extra],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        out = run()
        assert f"OK origin={ORIGIN} size={size} root={root}" in out
        assert f"bundles={(size + 255) // 256}" in out

        async def grow() -> None:
            async with httpx.AsyncClient(base_url=srv.url, timeout=30) as client:
                for i in range(3):
                    await api.user(client, f"gopher{i}", otks=0)

        asyncio.run(grow())
        for _ in range(100):  # the sequencer signs within a second
            _, new_size, _ = asyncio.run(_checkpoint(srv.url))
            if new_size > size:
                break
            asyncio.run(asyncio.sleep(0.1))
        out = run("-old-size", str(size), "-old-root", root)
        assert f"consistency={size}->{new_size}" in out, out
    finally:
        srv.stop()
