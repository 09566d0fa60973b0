"""Transparency-log benchmark: appends, proofs over HTTP, and a full audit, at scale.

Run:  .venv/bin/python bench/tlog_bench.py [--pg] [--entries 1000000] [--profile]

Phases (each prints its numbers; a table and the comparison come at the end):

1. **Appends integrated per second.** ``LogService.append`` driven by many concurrent
   tasks in-process, with the real sequencer running: an entry counts once it is durable
   *and* covered by a signed checkpoint. The gap between checkpoints is measured too
   (the promise is one at least every second). SQLite, and PostgreSQL with ``--pg``
   (a fresh database at 127.0.0.1:5432, dropped afterwards).
2. **Inclusion proofs per second over HTTP**, from a real ``clearpost serve`` whose log
   holds ``--entries`` entries (1,000,000 by default). The log is populated through the
   store and the sequencer directly and cached between runs.
3. **Consistency proofs per second** between published checkpoint sizes, same server.
4. **``clearpost audit verify``** of the whole log (fresh auditor, then an incremental
   re-run with a state file), as a subprocess, timed end to end.

The HTTP load generator is a raw asyncio HTTP/1.1 keep-alive client (uvloop, one request
in flight per connection) in its own process, so its CPU is not the server's. Its
ceiling is measured first against a trivial asyncio HTTP server and against the
server's ``GET /health``, so a proof rate can be read against what the client and the
server's HTTP stack can do at all. This is a 2-core machine: client and server share it.

``--profile`` samples the server with py-spy during the inclusion-proof run (and this
process during the append run) and prints the functions with the most self time.

Peer for comparison: Trillian Tessera's POSIX backend, about 2,900 writes/s on a 12-core
VM (its published performance notes); printed next to phase 1, not re-measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearpost.core.tlog.entries import Committed

ROOT = Path(__file__).resolve().parent.parent
CACHE = (
    Path(os.environ.get("CLEARPOST_BENCH_CACHE", tempfile.gettempdir())) / "clearpost-tlog-bench"
)
PG_ADMIN = os.environ.get("CLEARPOST_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ORIGIN = "bench.clearpost.test/log"
TESSERA_POSIX_WRITES = 2_900
TARGET_APPENDS = 20_000
TARGET_INCLUSION = 5_000

SERVER_ENV = {
    "CLEARPOST_LOG_LEVEL": "warning",
    "CLEARPOST_LOG_ORIGIN": ORIGIN,
    "CLEARPOST_TOKEN_RATE_PER_SECOND": "0",
    "CLEARPOST_LOGIN_RATE_PER_MINUTE": "0",
}


@dataclass
class Row:
    what: str
    value: float
    unit: str
    note: str = ""
    target: float | None = None


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    profiles: dict[str, list[tuple[float, str]]] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        status = ""
        if row.target is not None:
            status = "  (target met)" if row.value >= row.target else "  (TARGET MISSED)"
        print(f"  -> {row.what}: {row.value:,.1f} {row.unit}{status} {row.note}", flush=True)


def entry_for(i: int, salt: bytes) -> tuple[dict[str, Any], Committed]:
    """A ``device`` entry of format version 2 and its per-entry commitment (whose opening
    binds the device id and keys, as the server writes them)."""
    from clearpost.core.tlog.entries import commit, device_detail, device_entry

    key = secrets.token_bytes(32).hex()
    detail = device_detail(f"DEV{i:010d}", key[:43], key[21:])
    about = commit(salt, f"@user{i // 3}:bench", secrets.token_bytes(32), detail)
    return device_entry(about.subject, "added", 1_700_000_000_000 + i), about


# --- phase 1: appends integrated per second (in-process) ---


async def appends(url: str, seconds: float, writers: int) -> dict[str, float]:
    from clearpost.core.clock import SystemClock
    from clearpost.core.tlog import Signer
    from clearpost.server.services.tlog import LogService
    from clearpost.storage.db import Database
    from clearpost.storage.migrations import upgrade
    from clearpost.storage.sql.tlog import LogStore

    db = Database(url)
    await upgrade(db)
    signer = Signer.generate(ORIGIN)
    store = LogStore(db)
    await store.bind_key(signer.vkey)
    log = LogService(db, store, signer, [], SystemClock())
    salt = secrets.token_bytes(32)
    pool = [entry_for(i, salt) for i in range(20_000)]
    sequencer = asyncio.create_task(log.run_sequencer())
    checkpoints: list[tuple[float, int]] = []
    appended = 0
    done = asyncio.Event()

    async def watch() -> None:
        last = -1
        while not done.is_set():
            cp = await store.latest()
            if cp is not None and cp.size != last:
                checkpoints.append((time.perf_counter(), cp.size))
                last = cp.size
            await asyncio.sleep(0.02)

    async def writer(k: int, stop_at: float) -> None:
        nonlocal appended
        i = k
        while time.perf_counter() < stop_at:
            entry, subject = pool[i % len(pool)]
            await log.append(entry, subject)
            appended += 1
            i += writers

    async def integrated(size: int) -> None:
        while not checkpoints or checkpoints[-1][1] < size:  # noqa: ASYNC110 - polling the db
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    # warm up, then measure a fixed window
    warm_until = time.perf_counter() + 1.0
    await asyncio.gather(*(writer(k, warm_until) for k in range(writers)))
    await integrated(appended)
    start_size, t0 = appended, time.perf_counter()
    first_cp = len(checkpoints)
    await asyncio.gather(*(writer(k, t0 + seconds) for k in range(writers)))
    t_appended = time.perf_counter()
    total = appended
    await integrated(total)
    t_integrated = checkpoints[-1][0]
    done.set()
    await watcher
    sequencer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sequencer
    await db.close()
    window = [t for t, _ in checkpoints[first_cp - 1 :]]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    return {
        "appended_per_s": (total - start_size) / (t_appended - t0),
        "integrated_per_s": (total - start_size) / (t_integrated - t0),
        "entries": total - start_size,
        "checkpoints": len(gaps),
        "max_gap_s": max(gaps) if gaps else 0.0,
        "lag_s": t_integrated - t_appended,
    }


# --- populating a big log (store + sequencer, cached) ---


async def populate(data_dir: Path, count: int) -> None:
    """Write ``count`` entries and integrate them, signing with the server's own key."""
    from clearpost.core.clock import SystemClock
    from clearpost.core.tlog.entries import encode_entry
    from clearpost.server.services.logkey import load_or_create
    from clearpost.server.services.tlog import LogService
    from clearpost.storage.db import Database
    from clearpost.storage.migrations import upgrade
    from clearpost.storage.sql.tlog import LogStore, PendingEntry

    db = Database(f"sqlite+aiosqlite:///{data_dir / 'clearpost.db'}")
    await upgrade(db)
    signer = load_or_create(data_dir / "log.key", ORIGIN)
    store = LogStore(db)
    await store.bind_key(signer.vkey)
    log = LogService(db, store, signer, [], SystemClock())
    salt = secrets.token_bytes(32)
    started = time.perf_counter()
    batch = 50_000
    done = await store.next_index()
    while done < count:
        n = min(batch, count - done)
        pending = []
        for i in range(done, done + n):
            entry, about = entry_for(i, salt)
            pending.append(PendingEntry.about(encode_entry(entry), about))
        await store.append(pending, SystemClock().now_ms())
        while await log.integrate_once() is not None:
            pass
        done += n
        rate = done / (time.perf_counter() - started)
        print(f"\r  populated {done:,} / {count:,} entries ({rate:,.0f}/s)", end="", flush=True)
    print()
    await db.close()


def populated_dir(count: int, fresh: bool) -> Path:
    target = CACHE / f"log-{count}"
    marker = target / "complete"
    if fresh and target.exists():
        shutil.rmtree(target)
    if not marker.exists():
        shutil.rmtree(target, ignore_errors=True)
        print(f"populating a log of {count:,} entries in {target} (cached for later runs)")
        t = time.perf_counter()
        target.mkdir(parents=True)
        asyncio.run(populate(target, count))
        marker.write_text(f"{count}\n")
        print(f"  populated in {time.perf_counter() - t:.1f} s")
    return target


# --- servers ---


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str = "/health", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1) as s,
        ):
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port}")


@contextlib.contextmanager
def clearpost_server(data_dir: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, **SERVER_ENV}
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clearpost",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_http(port)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


NOOP_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
    b'{"status":"ok"}'
)


def _noop_server(port: int) -> None:
    """A trivial HTTP/1.1 server: answers every request at once (the client's ceiling)."""
    import uvloop

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            n = self.buf.count(b"\r\n\r\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4 :]
                self.t.write(NOOP_RESPONSE * n)  # type: ignore[attr-defined]

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


@contextlib.contextmanager
def noop_server() -> Iterator[int]:
    port = free_port()
    proc = mp.get_context("spawn").Process(target=_noop_server, args=(port,), daemon=True)
    proc.start()
    try:
        wait_http(port)
        yield port
    finally:
        proc.terminate()
        proc.join(5)


# --- the load generator (runs in its own process) ---


class _Conn(asyncio.Protocol):
    """One keep-alive connection, one request in flight; counts complete responses."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buf[:head_end]).lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end > 0 else None])
        if len(self.buf) < head_end + 4 + length:
            return
        body = bytes(self.buf[head_end + 4 : head_end + 4 + length])
        status = int(self.buf[9:12])
        del self.buf[: head_end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


def _loadgen(
    port: int, paths: list[str], connections: int, seconds: float, keep: int, out: Any
) -> None:
    import uvloop

    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        requests = [f"GET {p} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() for p in paths]
        ok = bad = 0
        kept: list[tuple[str, bytes]] = []
        statuses: Counter[int] = Counter()
        latencies: list[float] = []

        async def worker(k: int, stop_at: float) -> None:
            nonlocal ok, bad
            _, conn = await loop.create_connection(_Conn, "127.0.0.1", port)
            i = k
            try:
                while True:
                    now = time.perf_counter()
                    if now >= stop_at:
                        return
                    conn.waiter = loop.create_future()
                    assert conn.transport is not None
                    conn.transport.write(requests[i % len(requests)])
                    status, body = await conn.waiter
                    latencies.append(time.perf_counter() - now)
                    statuses[status] += 1
                    if status == 200:
                        ok += 1
                        if len(kept) < keep and random.random() < 0.01:
                            kept.append((paths[i % len(paths)], body))
                    else:
                        bad += 1
                    i += connections
            finally:
                if conn.transport is not None:
                    conn.transport.close()

        # a short warm-up, then the measured window
        await asyncio.gather(*(worker(k, time.perf_counter() + 0.5) for k in range(connections)))
        ok = bad = 0
        latencies.clear()
        statuses.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, t0 + seconds) for k in range(connections)))
        elapsed = time.perf_counter() - t0
        latencies.sort()
        return {
            "rate": ok / elapsed,
            "ok": ok,
            "bad": bad,
            "statuses": dict(statuses),
            "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
            "kept": [(p, b.decode()) for p, b in kept],
        }

    out.put(uvloop.run(main()))


def load(
    port: int, paths: list[str], *, connections: int = 64, seconds: float = 8.0, keep: int = 0
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_loadgen, args=(port, paths, connections, seconds, keep, queue))
    proc.start()
    result: dict[str, Any] = queue.get(timeout=seconds + 120)
    proc.join(10)
    return result


# --- profiling with py-spy ---


@contextlib.contextmanager
def sampled(pid: int, enabled: bool, seconds: int, results: Results, label: str) -> Iterator[None]:
    spy = Path(sys.executable).with_name("py-spy")
    if not enabled or not spy.exists():
        yield
        return
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    proc = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(seconds),
            "--output",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.wait(seconds + 30)
        results.profiles[label] = hot_spots(raw.read_text() if raw.exists() else "")
        raw.unlink(missing_ok=True)


def hot_spots(raw: str, top: int = 15) -> list[tuple[float, str]]:
    """Rank functions by self time from py-spy's collapsed stacks, then packages by
    inclusive time (share of samples with the package anywhere on the stack)."""
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[_frame(frames[-1])] += int(count)
        for package in {_package(f) for f in frames} - {""}:
            packages[package] += int(count)
    if not total:
        return []
    ranked = [(100 * n / total, name) for name, n in own.most_common(top)]
    ranked += [
        (100 * n / total, f"[package, inclusive] {name}") for name, n in packages.most_common(12)
    ]
    return ranked


_PACKAGES = (
    "clearpost",
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "uvicorn",
    "rfc8785",
    "orjson",
    "httptools",
)


def _package(frame: str) -> str:
    where = frame.partition(" (")[2]
    for name in _PACKAGES:
        if where.startswith(f"{name}/") or f"/{name}/" in where:
            return name
    return ""


def _frame(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)"
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


# --- phases 2-4 ---


def run_http_phases(
    count: int, fresh: bool, seconds: float, profile: bool, results: Results
) -> None:
    data_dir = populated_dir(count, fresh)
    import sqlite3

    with sqlite3.connect(data_dir / "clearpost.db") as db:
        sizes = [int(r[0]) for r in db.execute("SELECT size FROM tlog_checkpoints ORDER BY size")]
    size = sizes[-1]
    print(f"log: {size:,} entries, {len(sizes)} checkpoints")

    print("\n[load generator ceiling]")
    with noop_server() as port:
        ceiling = load(port, ["/health"], seconds=seconds / 2)
    results.add(
        Row(
            "client ceiling: trivial asyncio server",
            ceiling["rate"],
            "req/s",
            f"p50 {ceiling['p50_ms']:.1f} ms",
        )
    )

    with clearpost_server(data_dir) as (port, proc):
        health = load(port, ["/health"], seconds=seconds / 2)
        results.add(
            Row(
                "clearpost GET /health",
                health["rate"],
                "req/s",
                f"p50 {health['p50_ms']:.1f} ms, p99 {health['p99_ms']:.1f} ms",
            )
        )

        print("\n[2. inclusion proofs over HTTP]")
        rng = random.Random(7)
        paths = [
            f"/v1/log/proof/inclusion?index={rng.randrange(size)}&size={size}"
            for _ in range(50_000)
        ]
        with sampled(proc.pid, profile, int(seconds), results, "server: inclusion proofs"):
            inc = load(port, paths, seconds=seconds, keep=20)
        check_inclusion(inc["kept"], data_dir, size)
        results.add(
            Row(
                f"inclusion proofs at {size:,} entries",
                inc["rate"],
                "proofs/s",
                f"p50 {inc['p50_ms']:.1f} ms, p99 {inc['p99_ms']:.1f} ms, errors {inc['bad']}",
                TARGET_INCLUSION,
            )
        )

        print("\n[3. consistency proofs over HTTP]")
        pairs = [(a, b) for a in sizes for b in sizes if a < b] or [(size, size)]
        paths = [f"/v1/log/proof/consistency?from={a}&to={b}" for a, b in pairs]
        rng.shuffle(paths)
        con = load(port, paths, seconds=seconds)
        results.add(
            Row(
                "consistency proofs",
                con["rate"],
                "proofs/s",
                f"p50 {con['p50_ms']:.1f} ms, p99 {con['p99_ms']:.1f} ms, errors {con['bad']}",
            )
        )

        print("\n[4. clearpost audit verify]")
        state = Path(tempfile.mkdtemp()) / "audit.json"
        url = f"http://127.0.0.1:{port}"
        for label, args in (
            ("full audit (fresh, TOFU)", ["--state", str(state)]),
            ("incremental re-audit (nothing new)", ["--state", str(state)]),
        ):
            t = time.perf_counter()
            run = subprocess.run(
                [sys.executable, "-m", "clearpost", "audit", "verify", "--server", url, *args],
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - t
            if run.returncode != 0:
                print(run.stdout, run.stderr)
                raise SystemExit(f"audit verify failed with exit {run.returncode}")
            results.add(
                Row(
                    f"audit verify: {label}",
                    elapsed,
                    "s",
                    f"{size / elapsed:,.0f} entries/s" if "full" in label else "",
                )
            )
        shutil.rmtree(state.parent, ignore_errors=True)


def check_inclusion(kept: list[tuple[str, str]], data_dir: Path, size: int) -> None:
    """A sample of the proofs the server sent must verify against its signed root."""
    import base64
    import sqlite3

    from clearpost.core.tlog import leaf_hash, verify_inclusion

    with sqlite3.connect(data_dir / "clearpost.db") as db:
        root = bytes(
            db.execute("SELECT root FROM tlog_checkpoints WHERE size = ?", (size,)).fetchone()[0]
        )
        for path, body in kept:
            index = int(path.split("index=")[1].split("&")[0])
            data = bytes(
                db.execute("SELECT body FROM tlog_entries WHERE idx = ?", (index,)).fetchone()[0]
            )
            proof = [base64.b64decode(h) for h in json.loads(body)["hashes"]]
            verify_inclusion(leaf_hash(data), index, size, proof, root)
    print(f"  {len(kept)} sampled proofs verified")


# --- PostgreSQL database for phase 1 ---


async def pg_create() -> str:
    import asyncpg

    name = "cp_tlog_bench_" + secrets.token_hex(4)
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def pg_drop(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run_appends(
    backend: str, seconds: float, writers: int, profile: bool, results: Results
) -> None:
    import uvloop

    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-"))
    name = None
    try:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp / 'append.db'}"
        else:
            name = asyncio.run(pg_create())
            url = (
                PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
                + "/"
                + name
            )
        with sampled(os.getpid(), profile, int(seconds) + 1, results, f"appends ({backend})"):
            r = uvloop.run(appends(url, seconds, writers))
        results.add(
            Row(
                f"appends integrated ({backend}, {writers} writers)",
                r["integrated_per_s"],
                "entries/s",
                f"{r['entries']:,.0f} entries, {r['checkpoints']:.0f} checkpoints, "
                f"max gap {r['max_gap_s']:.2f} s, lag {r['lag_s']:.2f} s",
                TARGET_APPENDS,
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if name is not None:
            asyncio.run(pg_drop(name))


def print_table(results: Results) -> None:
    print("\n" + "=" * 100)
    print(f"{'measurement':<52} {'value':>14}  {'unit':<10} {'target':>9}")
    print("-" * 100)
    for r in results.rows:
        target = f"{r.target:,.0f}" if r.target is not None else ""
        print(f"{r.what:<52} {r.value:>14,.1f}  {r.unit:<10} {target:>9}  {r.note}")
    print("-" * 100)
    best = max(
        (r.value for r in results.rows if r.what.startswith("appends integrated")), default=0
    )
    if best:
        print(
            f"peer: Trillian Tessera POSIX backend ~{TESSERA_POSIX_WRITES:,} writes/s on a "
            f"12-core VM (published); here {best:,.0f}/s on {os.cpu_count()} cores = "
            f"{best / TESSERA_POSIX_WRITES:.1f}x"
        )
    for label, spots in results.profiles.items():
        print(f"\nhot spots, {label} (self time, py-spy):")
        for share, name in spots:
            print(f"  {share:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size for phases 2-4")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measured window")
    parser.add_argument("--writers", type=int, default=4000, help="concurrent appenders in phase 1")
    parser.add_argument("--pg", action="store_true", help="also run phase 1 on PostgreSQL")
    parser.add_argument("--fresh", action="store_true", help="re-populate the cached big log")
    parser.add_argument(
        "--profile", action="store_true", help="sample with py-spy and print hot spots"
    )
    parser.add_argument("--only", choices=["appends", "http"], help="run one part only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    results = Results()
    print(
        f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
        f"load average {os.getloadavg()[0]:.2f} (other processes share these cores)"
    )
    if args.only in (None, "appends"):
        print("\n[1. appends integrated per second, in-process]")
        for backend in ["sqlite", *(["postgres"] if args.pg else [])]:
            run_appends(backend, args.seconds, args.writers, args.profile, results)
    if args.only in (None, "http"):
        run_http_phases(args.entries, args.fresh, args.seconds, args.profile, results)
    print_table(results)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
