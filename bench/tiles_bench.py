"""C2SP tlog-tiles benchmark: a full audit from tiles, tiles served per second next to a
static file server, and inclusion proofs a client assembles from tiles next to the proof API.

Run:  .venv/bin/python bench/tiles_bench.py [--entries 1000000] [--seconds 5] [--phase ...]

Uses the cached log of ``bench/tlog_bench.py`` (populated once, through the store and the
sequencer) and one real ``clearpost serve`` on it. Each phase prints its numbers next to
its peer, measured in the same run:

1. ``clearpost audit verify`` (fresh, no state) from tiles — every entry and every stored
   node — against ``--proofs`` (the JSON entries pages and 10 proofs, as before).
2. Full level-0 hash tiles per second over HTTP from the server (64 keep-alive
   connections, random tiles) against nginx serving the very same bytes from files, and
   against the server's own ``GET /health``; nginx is the ceiling (skipped with a note if
   it is not installed: ``apt-get install nginx-light``).
3. Inclusion proofs per second at the log's size: from ``/v1/log/proof/inclusion``
   against a client that assembles (and verifies) each proof from tiles — the level-0
   tile fetched for every proof, the upper tiles cached as any tile client does — from the
   server, and from nginx serving a mirror of every tile (what a cache in front of the log
   serves: full tiles never change).

This is a 2-core machine shared with other work: client and server share it, so read the
numbers side by side, not as absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import multiprocessing as mp
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# the sibling benchmark: cached log, server process, load generator
import tlog_bench as tb

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (``/proc/stat``, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def audit_phase(port: int, server_pid: int, size: int, runs: int, one_process: bool) -> None:
    print("\n[1. full audit, fresh]")
    print(
        "  (wall: the whole command, interpreter start included; auditor CPU: its user+sys;\n"
        "   server CPU: the server process during the run; other CPU: everything else on the\n"
        "   machine during the run, in seconds: high means the numbers are disturbed)"
    )
    url = f"http://127.0.0.1:{port}"
    variants = [("from tiles (every node)", [])] * runs
    if one_process:  # the same without the helper process (audit/tilehelper.py)
        variants += [("from tiles, --processes 1", ["--processes", "1"])] * runs
    variants += [("--proofs (JSON API)", ["--proofs"])]
    for label, extra in variants:
        server0, busy0 = _cpu_seconds(server_pid), _machine_busy()
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "clearpost", "audit", "verify", "--server", url, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = proc.communicate()
        auditor = usage.ru_utime + usage.ru_stime
        server = _cpu_seconds(server_pid) - server0
        other = _machine_busy() - busy0 - auditor - server
        if proc.returncode != 0:
            print(stdout, stderr)
            raise SystemExit(f"audit verify failed with exit {proc.returncode}")
        print(
            f"  -> audit {label}: {elapsed:.2f} s ({size / elapsed:,.0f} entries/s); "
            f"CPU: auditor {auditor:.2f} s, server {server:.2f} s, other {max(other, 0):.2f} s"
        )


def fetch_tiles(port: int, count: int, out: Path) -> list[str]:
    """Fetch full level-0 tiles once and write them as files under ``out`` (same paths)."""
    from clearpost.core.tlog.c2sp_tiles import tile_path

    return mirror(port, [f"/log/{tile_path(0, n)}" for n in range(count)], out)


def every_tile(size: int) -> list[str]:
    """The paths of every hash tile of a tree of ``size``, full and partial, all levels."""
    from clearpost.core.tlog.c2sp_tiles import tile_path
    from clearpost.core.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, TileId, width_at

    paths, level = [], 0
    while size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        for n in range((count + TILE_WIDTH - 1) // TILE_WIDTH):
            paths.append(f"/log/{tile_path(level, n, width_at(TileId(level, n), size))}")
        level += 1
    return paths


def mirror(port: int, paths: list[str], out: Path) -> list[str]:
    """Fetch ``paths`` from the server once and write them as files under ``out``."""
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for p in paths:
            r = client.get(p)
            r.raise_for_status()
            target = out / p.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(r.content)
    return paths


def nginx_conf(root: Path, port: int, work: Path) -> Path:
    conf = work / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ default_type application/octet-stream; }}
  }}
}}
"""
    )
    return conf


def tiles_phase(port: int, size: int, seconds: float) -> None:
    print("\n[2. full hash tiles per second over HTTP]")
    full = size // 256
    rng = random.Random(3)
    work = Path(tempfile.mkdtemp(prefix="tiles-bench-"))
    work.chmod(0o755)  # nginx's workers run as another user
    try:
        all_paths = fetch_tiles(port, min(full, 4000), work / "root")
        paths = [rng.choice(all_paths) for _ in range(20_000)]
        health = tb.load(port, ["/health"], seconds=seconds / 2)
        print(f"  -> clearpost GET /health: {health['rate']:,.0f} req/s")
        served = tb.load(port, paths, seconds=seconds)
        print(
            f"  -> clearpost tiles: {served['rate']:,.0f} tiles/s "
            f"(p50 {served['p50_ms']:.1f} ms, p99 {served['p99_ms']:.1f} ms, "
            f"errors {served['bad']})"
        )
        if not Path(NGINX).exists():
            print("  -> nginx: not installed (apt-get install nginx-light); no ceiling measured")
            return
        nport = tb.free_port()
        proc = subprocess.Popen([NGINX, "-c", str(nginx_conf(work / "root", nport, work))])
        try:
            time.sleep(0.5)
            static = tb.load(nport, paths, seconds=seconds)
            print(
                f"  -> nginx, same bytes from files: {static['rate']:,.0f} tiles/s "
                f"(p50 {static['p50_ms']:.1f} ms, errors {static['bad']})"
            )
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _assemble(port: int, size: int, seconds: float, out: Any) -> None:
    """A tile client: per proof, fetch the level-0 tile, take upper tiles from its cache,
    build the RFC 9162 inclusion proof from recomputed tile nodes, and verify it."""
    import uvloop

    from clearpost.core.tlog import (
        NodeId,
        inclusion_proof_nodes,
        resolve_proof,
        verify_inclusion,
    )
    from clearpost.core.tlog.c2sp_tiles import tile_nodes, tile_path
    from clearpost.core.tlog.tiles import TileId, locate, width_at

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        cache: dict[TileId, bytes] = {}
        root: bytes | None = None
        done = 0

        async def get(conn: tb._Conn, path: str) -> bytes:
            conn.waiter = loop.create_future()
            assert conn.transport is not None
            conn.transport.write(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
            status, body = await conn.waiter
            assert status == 200, (status, path)
            return body

        async def tile(conn: tb._Conn, t: TileId) -> bytes:
            if t in cache:
                return cache[t]
            width = width_at(t, size)
            bottom = await get(conn, "/log/" + tile_path(t.level, t.index, width))
            nodes, _ = tile_nodes([bottom[i : i + 32] for i in range(0, len(bottom), 32)])
            if t.level > 0:
                cache[t] = nodes
            return nodes

        async def worker(stop: float) -> None:
            nonlocal done
            _, conn = await loop.create_connection(tb._Conn, "127.0.0.1", port)
            rng = random.Random()
            while time.perf_counter() < stop:
                index = rng.randrange(size)
                parts = inclusion_proof_nodes(index, size)
                wanted = {locate(p)[0] for n in parts for p in n.parts}
                wanted.add(locate(NodeId(0, index))[0])
                tiles = {t: await tile(conn, t) for t in wanted}
                proof = resolve_proof(parts, functools.partial(_read, tiles))
                leaf = _read(tiles, NodeId(0, index))
                verify_inclusion(leaf, index, size, proof, root or b"")
                done += 1
            assert conn.transport is not None
            conn.transport.close()

        from clearpost.core.tlog.nodes import fold_right, subtree_nodes

        # The signed root, computed from tiles once (a real client checks the checkpoint).
        _, conn0 = await loop.create_connection(tb._Conn, "127.0.0.1", port)
        edge = []
        for node in subtree_nodes(0, size):
            t, pos = locate(NodeId(node.level, node.index))
            edge.append((await tile(conn0, t))[pos * 32 : pos * 32 + 32])
        root = fold_right(edge)
        await asyncio.gather(*(worker(time.perf_counter() + 0.5) for _ in range(64)))
        done = 0
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(64)))
        return {"rate": done / (time.perf_counter() - t0)}

    out.put(uvloop.run(main()))


def _read(tiles: dict[Any, bytes], node: Any) -> bytes:
    from clearpost.core.tlog.tiles import locate

    t, pos = locate(node)
    return tiles[t][pos * 32 : pos * 32 + 32]


def proofs_phase(port: int, size: int, seconds: float) -> None:
    print(f"\n[3. inclusion proofs per second at {size:,} entries]")
    rng = random.Random(7)
    paths = [
        f"/v1/log/proof/inclusion?index={rng.randrange(size)}&size={size}" for _ in range(50_000)
    ]
    api = tb.load(port, paths, seconds=seconds)
    print(f"  -> proof API: {api['rate']:,.0f} proofs/s (p50 {api['p50_ms']:.1f} ms)")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_assemble, args=(port, size, seconds, queue))
    proc.start()
    result = queue.get(timeout=seconds + 120)
    proc.join(10)
    print(f"  -> assembled from tiles (and verified) by the client: {result['rate']:,.0f} proofs/s")
    if not Path(NGINX).exists():
        print("  -> behind a static mirror: nginx not installed (apt-get install nginx-light)")
        return
    # the same client against a static mirror of every tile (what a cache in front serves)
    work = Path(tempfile.mkdtemp(prefix="tiles-mirror-"))
    work.chmod(0o755)  # nginx's workers run as another user
    try:
        mirror(port, every_tile(size), work / "root")
        nport = tb.free_port()
        nginx = subprocess.Popen([NGINX, "-c", str(nginx_conf(work / "root", nport, work))])
        try:
            time.sleep(0.5)
            proc = ctx.Process(target=_assemble, args=(nport, size, seconds, queue))
            proc.start()
            result = queue.get(timeout=seconds + 120)
            proc.join(10)
        finally:
            nginx.terminate()
            nginx.wait(10)
        print(
            "  -> the same client, tiles from nginx serving a mirror of them: "
            f"{result['rate']:,.0f} proofs/s"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--phase", choices=["audit", "tiles", "proofs"], action="append")
    parser.add_argument(
        "--audit-runs", type=int, default=1, help="tile audits to run, one after another"
    )
    parser.add_argument(
        "--audit-one-process",
        action="store_true",
        help="as many tile audits again with --processes 1 (no helper process)",
    )
    args = parser.parse_args()
    phases = args.phase or ["audit", "tiles", "proofs"]
    data_dir = tb.populated_dir(args.entries, False)
    with sqlite3.connect(data_dir / "clearpost.db") as db:
        (size,) = db.execute("SELECT max(size) FROM tlog_checkpoints").fetchone()
    print(f"log: {size:,} entries")
    with tb.clearpost_server(data_dir) as (port, server):
        if "audit" in phases:
            audit_phase(port, server.pid, size, args.audit_runs, args.audit_one_process)
        if "tiles" in phases:
            tiles_phase(port, size, args.seconds)
        if "proofs" in phases:
            proofs_phase(port, size, args.seconds)


if __name__ == "__main__":
    main()
