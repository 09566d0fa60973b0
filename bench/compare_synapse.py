"""Clearpost against Matrix Synapse, and against a bare uvicorn "hello" ceiling, in one run.

    .venv/bin/python bench/compare_synapse.py              # 3 runs, medians (~15 min)
    .venv/bin/python bench/compare_synapse.py --quick      # 1 short run (~1.5 min)
    .venv/bin/python bench/compare_synapse.py --runs 1 --json bench/work/compare.json

Every run starts, measures and stops, in this order (see bench/COMPARE.md):

1. **Synapse**: ``matrix-synapse`` from PyPI in its own venv (``bench/work/synapse-venv``,
   installed on first use), one process, SQLite, loopback only, open registration, every
   rate limit raised, no federation listener, no key servers, no stats, presence off;
2. **Clearpost on SQLite** (``clearpost serve``, a fresh data dir);
3. **Clearpost on PostgreSQL** (a fresh database on postgres@127.0.0.1:5432, dropped after);
4. **two Clearpost processes** on one fresh PostgreSQL database, sharing the log and report
   key files; the generator's connections alternate between the two ports, and a syncing
   member's long-poll goes to one process while the message is sent to the other;
5. the **ceiling**: a plain uvicorn + uvloop + httptools ASGI app answering "hello" to the
   same PUT requests, and the generator's own ceiling (``noop_server.py``).

Against each server, the load generator of ``loadgen.py`` (its ``Target`` seam, setup,
closed loop, delivery and fan-in phases) runs the same workload: 20 users, a 20-member
group and 19 direct conversations; 2,000 sends of a ~200-byte Megolm ciphertext at
concurrency 1, 16 and 64 (after 200 unmeasured warm-up sends each); delivery latency to a
long-polling member over 200 messages sent one at a time; 19 senders fan in to one
syncing user. Then one table of medians over ``--runs`` and the targets of the issue.

Only 127.0.0.1 is contacted; everything started is stopped, every database and data dir
made is removed (``--keep`` keeps the data dirs). Loops are bounded in count and each
phase by ``--phase-timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
import uvloop
import vodozemac
from clearpost_target import ClearpostTarget
from http1 import Connection, connect
from launch import (
    BENCH_ENV,
    Footprint,
    Launched,
    cpu_seconds,
    export_commit,
    free_port,
    git_state,
    load_average,
    machine_busy_seconds,
    memory,
    pg_create,
    pg_drop,
    start_noop,
)
from loadgen import Workload
from phases import (
    DeliveryResult,
    FanInResult,
    LoadResult,
    Send,
    closed_loop,
    delivery,
    fan_in,
    plaintext_for,
    setup,
    split,
    wait_quiet,
)
from rich.console import Console
from rich.table import Table
from synapse_target import SynapseTarget
from target import Ciphertext, Session, SyncBatch, Target

BENCH = Path(__file__).resolve().parent
WORK = BENCH / "work"
SYNAPSE_SPEC = "matrix-synapse==1.163.2"
SYSTEMS = ("synapse", "sqlite", "postgres", "postgres2", "ceiling")
LABELS = {
    "synapse": "Synapse (SQLite)",
    "sqlite": "Clearpost (SQLite)",
    "postgres": "Clearpost (PostgreSQL)",
    "postgres2": "Clearpost x2 (PostgreSQL)",
    "ceiling": "uvicorn hello",
}
BUSY_OTHER_PCT = 25.0

console = Console(width=None if sys.stdout.isatty() else 160)
R = TypeVar("R", LoadResult, DeliveryResult, FanInResult)

# The ceiling: the least a Python ASGI server does for one request (read it, answer it).
HELLO_APP = """
import sys
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            lifespan="off", log_level="warning", access_log=False)
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=3, help="full runs; the table shows medians")
    p.add_argument("--quick", action="store_true", help="one short run (small counts)")
    p.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all)",
    )
    p.add_argument("--messages", type=int, default=2000, help="sends per concurrency level")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--delivery-messages", type=int, default=200)
    p.add_argument("--fanin-messages", type=int, default=100, help="per sender")
    p.add_argument("--ceiling-requests", type=int, default=20_000, help="per level")
    p.add_argument("--phase-timeout", type=float, default=300.0, help="seconds, per phase")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each timed phase, wait up to this long for the rest of the machine "
        "to go idle (for a shared machine; default 0: don't wait)",
    )
    p.add_argument(
        "--commit",
        default="HEAD",
        metavar="REV",
        help="run Clearpost from this commit's src/ (git archive; default HEAD), not from the "
        "working tree, which others may be editing; 'worktree' runs the checkout",
    )
    p.add_argument("--synapse-spec", default=SYNAPSE_SPEC, help="what pip installs")
    p.add_argument("--synapse-venv", type=Path, default=WORK / "synapse-venv")
    p.add_argument("--json", type=Path, metavar="FILE", help="every run's numbers as JSON")
    p.add_argument("--keep", action="store_true", help="keep the data dirs under bench/work/")
    args = p.parse_args(argv)
    if args.quick:
        args.runs, args.messages, args.warmup = 1, 300, 50
        args.delivery_messages, args.fanin_messages, args.ceiling_requests = 50, 20, 5000
    args.levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(args.systems) - set(SYSTEMS):
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if not 1 <= args.runs <= 9:
        p.error("--runs must be between 1 and 9")
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 256:
        p.error("--concurrency wants levels between 1 and 256")
    if not 2 <= args.members <= 64:
        p.error("--members must be between 2 and 64")
    for name in ("messages", "warmup", "delivery_messages", "fanin_messages", "ceiling_requests"):
        if not 0 <= getattr(args, name) <= 200_000:
            p.error(f"--{name.replace('_', '-')} must be between 0 and 200,000")
    return args


# -- processes ------------------------------------------------------------------------------


@dataclass
class Running:
    """The server processes of one system, and where its data lives."""

    launched: list[Launched]
    startup_s: float
    """Process start to the first 200 from the first process's health path."""
    sqlite_path: Path | None = None
    pg_url: str | None = None
    dirs: list[Path] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [x.url for x in self.launched]

    @property
    def pids(self) -> list[int]:
        return [x.pid for x in self.launched]

    async def stop(self, keep: bool) -> None:
        for x in self.launched:
            if not x.alive():
                console.print(f"[red]{x.url} had exited:[/red]\n{x.log_tail()}")
            x.stop()
        if self.pg_url:
            await pg_drop(self.pg_url)
        if not keep:
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)


def _get_status(url: str, path: str) -> int | None:
    host, _, port = url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def spawn(
    cmd: list[str], env: dict[str, str], log_path: Path, port: int, ready: str, deadline_s: float
) -> tuple[Launched, float]:
    """Start ``cmd`` and poll ``ready`` every 10 ms: the process and its seconds to a 200."""
    t0 = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_path.parent
        )
    launched = Launched(f"http://127.0.0.1:{port}", proc, log_path)
    while time.perf_counter() - t0 < deadline_s:
        if not launched.alive():
            raise RuntimeError(f"{cmd[2:4]} exited at start:\n{launched.log_tail()}")
        if _get_status(launched.url, ready) == 200:
            return launched, time.perf_counter() - t0
        time.sleep(0.01)
    launched.stop()
    raise RuntimeError(f"no 200 from {ready} within {deadline_s} s:\n{launched.log_tail()}")


def ensure_synapse(venv: Path, spec: str) -> tuple[Path, str]:
    """Synapse's interpreter, installing ``spec`` from PyPI into ``venv`` if needed."""
    python = venv / "bin" / "python"
    wanted = spec.partition("==")[2]
    version = _synapse_version(python)
    if version is None or (wanted and version != wanted):
        console.print(f"installing {spec} into {venv} ...")
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        done = subprocess.run([*pip, spec], capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise SystemExit(f"pip install {spec} failed:\n{done.stdout[-2000:]}{done.stderr}")
        version = _synapse_version(python)
        if version is None:
            raise SystemExit(f"{spec} installed but `import synapse` fails in {venv}")
    return python, version


def _synapse_version(python: Path) -> str | None:
    if not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('matrix-synapse'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip() if out.returncode == 0 else None


def start_synapse(python: Path, root: Path) -> Running:
    data = Path(root, f"synapse-{secrets.token_hex(3)}")
    data.mkdir(parents=True)
    port = free_port()
    values = {"DATA_DIR": str(data), "PORT": str(port), "SECRET": secrets.token_hex(24)}
    for name in ("homeserver.yaml", "log.yaml"):
        text = Template((BENCH / "synapse" / name).read_text()).substitute(values)
        (data / name).write_text(text)
    config = str(data / "homeserver.yaml")
    module = [str(python), "-m", "synapse.app.homeserver", "-c", config]
    subprocess.run(  # the server's signing key: made once, not part of the start-up time
        [*module, "--generate-keys"], check=True, capture_output=True, timeout=120, cwd=data
    )
    launched, startup = spawn(
        module, dict(os.environ), data / "stdout.log", port, SynapseTarget.health_path, 120
    )
    return Running([launched], startup, sqlite_path=data / "homeserver.db", dirs=[data])


def start_clearpost(
    root: Path, pg_url: str | None, source: Path | None, processes: int = 1
) -> Running:
    """``processes`` times ``clearpost serve``, each with its own data dir; with several, they
    share one database and one log key and report key (made by the first to start)."""
    keys = Path(root, f"clearpost-keys-{secrets.token_hex(3)}")
    keys.mkdir(parents=True)
    env = {**os.environ, **BENCH_ENV}
    if source is not None:  # ahead of the editable install's path entry
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    if processes > 1:
        env["CLEARPOST_LOG_KEY_FILE"] = str(keys / "log.key")
        env["CLEARPOST_REPORT_KEY_FILE"] = str(keys / "report.key")
    running = Running([], 0.0, pg_url=pg_url, dirs=[keys])
    try:
        for i in range(processes):
            data = Path(root, f"clearpost-{secrets.token_hex(3)}")
            data.mkdir(parents=True)
            running.dirs.append(data)
            port = free_port()
            cmd = [sys.executable, "-m", "clearpost", "serve", "--host", "127.0.0.1"]
            cmd += ["--port", str(port), "--data-dir", str(data)]
            if pg_url:
                cmd += ["--database", pg_url]
            launched, startup = spawn(cmd, env, data / "server.log", port, "/health", 60)
            running.launched.append(launched)
            if i == 0:
                running.startup_s = startup
                running.sqlite_path = None if pg_url else data / "clearpost.db"
    except BaseException:
        for x in running.launched:
            x.stop()
        raise
    return running


def start_hello(root: Path) -> Running:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    log = Path(root, f"hello-{port}.log")
    launched, startup = spawn(
        [sys.executable, "-c", HELLO_APP, str(port)], dict(os.environ), log, port, "/", 30
    )
    launched.cleanup.append(log)
    return Running([launched], startup)


# -- measuring -----------------------------------------------------------------------------


def backends_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving ``database`` (found by its
    process title, ``postgres: [CLUSTER:] USER DATABASE HOST ...``); other databases' backends, such
    as someone else's tests, are left out, and so are PostgreSQL's own background
    processes (WAL writer, checkpointer), a small share."""
    if not database:
        return {}
    out: dict[int, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() != "postgres":
                continue
            title = (proc / "cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if database.encode() in title[2:4]:
            out[int(proc.name)] = cpu_seconds(int(proc.name))
    return out


class Meter:
    """CPU over one phase, in % of one core: the server processes (summed), the PostgreSQL
    backends of their database, this generator, and everything else on the machine
    (someone else's job: a warning sign on a 2-core machine)."""

    def __init__(self, pids: Sequence[int], database: str | None = None) -> None:
        self.pids, self.database = list(pids), database

    def _now(self) -> tuple[float, float, dict[int, float], float, float]:
        server = sum(cpu_seconds(p) for p in self.pids)
        backends = backends_cpu(self.database)
        return time.perf_counter(), server, backends, time.process_time(), machine_busy_seconds()

    def __enter__(self) -> Meter:
        self._start = self._now()
        return self

    def __exit__(self, *_: object) -> None:
        t1, server1, pg1, gen1, busy1 = self._now()
        t0, server0, pg0, gen0, busy0 = self._start
        wall = (t1 - t0) or 1e-9
        server, gen, busy = server1 - server0, gen1 - gen0, busy1 - busy0
        pg = sum(cpu - pg0.get(pid, 0.0) for pid, cpu in pg1.items())
        self.server_pct = 100 * server / wall
        self.pg_pct = 100 * pg / wall
        self.generator_pct = 100 * gen / wall
        self.other_pct = max(0.0, 100 * (busy - server - pg - gen) / wall)


class SpreadTarget:
    """Spreads the generator's connections over several server processes.

    The phases open every connection to one URL; this wraps any ``Target`` and sends each
    of those connections' requests over its own connection to the next server in turn,
    so with two processes concurrent workers alternate between them, and in the delivery
    phase the syncing member (the first connection) polls one process while the sender
    (the second) sends to the other."""

    def __init__(self, inner: Target, urls: Sequence[str]) -> None:
        self.inner, self.urls = inner, list(urls)
        self.name = f"{inner.name} x{len(self.urls)}"
        self.health_path = inner.health_path
        self._routes: dict[int, tuple[Connection, int, Connection]] = {}
        self._turn = 0

    async def _route(self, conn: Connection) -> Connection:
        entry = self._routes.get(id(conn))
        if entry is None or entry[0] is not conn:
            index, self._turn = self._turn % len(self.urls), self._turn + 1
        elif entry[2].closed:
            index = entry[1]
        else:
            return entry[2]
        routed = await connect(self.urls[index])
        self._routes[id(conn)] = (conn, index, routed)
        return routed

    def close_all(self) -> None:
        """After a phase: close the routed connections and start the turns again."""
        for _, _, routed in self._routes.values():
            routed.close()
        self._routes.clear()
        self._turn = 0

    async def register(self, conn: Connection, username: str, password: str) -> Session:
        return await self.inner.register(await self._route(conn), username, password)

    async def create_group(
        self, conn: Connection, owner: Session, members: Sequence[Session]
    ) -> str:
        return await self.inner.create_group(await self._route(conn), owner, members)

    async def create_direct(self, conn: Connection, a: Session, b: Session) -> str:
        return await self.inner.create_direct(await self._route(conn), a, b)

    def encrypt(self, sender: Session, plaintext: bytes) -> Ciphertext:
        return self.inner.encrypt(sender, plaintext)

    async def send(
        self, conn: Connection, sender: Session, conversation_id: str, txn_id: str, ct: Ciphertext
    ) -> None:
        await self.inner.send(await self._route(conn), sender, conversation_id, txn_id, ct)

    async def sync(
        self, conn: Connection, session: Session, since: str | None, timeout_ms: int
    ) -> SyncBatch:
        return await self.inner.sync(await self._route(conn), session, since, timeout_ms)


class Phases:
    """Runs the timed phases against one system: optionally waits for the rest of the
    machine to go quiet first, meters CPU over all of the system's processes (the phases'
    own accounting sees one pid at most) and closes the routed connections after each."""

    def __init__(self, running: Running, target: Target | None, wait_quiet_s: float) -> None:
        self.running, self.target, self.wait_quiet_s = running, target, wait_quiet_s
        self.database = urlsplit(running.pg_url).path.lstrip("/") if running.pg_url else None
        self.other: list[float] = []
        self.waited = 0.0

    async def __call__(
        self, run: Callable[[], Awaitable[R]], quiet: bool = True, record: bool = True
    ) -> tuple[R, Meter]:
        if quiet and self.wait_quiet_s > 0:
            self.waited += await wait_quiet(self.running.pids[0], self.wait_quiet_s)
        meter = Meter(self.running.pids, self.database)
        try:
            with meter:
                result = await run()
        finally:
            if isinstance(self.target, SpreadTarget):
                self.target.close_all()
        result.server_cpu_pct, result.generator_cpu_pct = meter.server_pct, meter.generator_pct
        result.other_cpu_pct = meter.other_pct
        if record:
            self.other.append(meter.other_pct)
        return result, meter


def rss_mib(pids: Sequence[int]) -> float | None:
    values = [memory(p).rss_kib for p in pids]
    return None if None in values else sum(v or 0 for v in values) / 1024


def record_send(out: dict[str, Any], c: int, r: LoadResult, meter: Meter) -> None:
    out["phases"][f"send_c{c}"] = r
    out[f"send_c{c}"], out[f"send_errors_c{c}"] = r.rate, r.errors
    out[f"send_p50_c{c}"], out[f"send_p99_c{c}"] = r.latency.p50_ms, r.latency.p99_ms
    out[f"server_cpu_c{c}"], out[f"pg_cpu_c{c}"] = meter.server_pct, meter.pg_pct
    busy = meter.server_pct + meter.pg_pct
    out[f"cpu_ms_per_msg_c{c}"] = 10 * busy / r.rate if r.rate else None


async def measure(
    system: str, running: Running, args: argparse.Namespace, plaintext: bytes
) -> dict[str, Any]:
    """The whole workload against one started system: flat numbers for the table, and
    every phase's full result for ``--json``."""
    target: Target = SynapseTarget() if system == "synapse" else ClearpostTarget()
    if len(running.urls) > 1:
        target = SpreadTarget(target, running.urls)
    url, pids = running.urls[0], running.pids
    out: dict[str, Any] = {"startup_s": running.startup_s, "phases": {}}
    phase = Phases(running, target, args.wait_quiet)

    # setup, then the footprint at idle
    t0 = time.perf_counter()
    world = await setup(target, url, args.members)
    if isinstance(target, SpreadTarget):
        target.close_all()
    out["setup_s"] = time.perf_counter() - t0
    work = Workload(target, world, plaintext)
    with Meter(pids) as idle:
        await asyncio.sleep(2.0)
    out["cpu_idle_pct"], out["rss_idle_mib"] = idle.server_pct, rss_mib(pids)
    footprint = Footprint(None, running.sqlite_path, running.pg_url)
    await footprint.before()
    stored = 0

    async def op(conn: Connection, s: Send) -> None:
        await target.send(conn, s.sender, s.conversation_id, s.txn_id, s.ct)

    def loop(label: str, c: int, count: int) -> Callable[[], Awaitable[LoadResult]]:
        return lambda: closed_loop(label, url, work.group(c, count), op, None, args.phase_timeout)

    # send throughput
    for c in args.levels:
        console.print(f"  send, concurrency {c} ...")
        if args.warmup:
            warm, _ = await phase(loop("warm-up", c, args.warmup), record=False)
            stored += warm.ok
        r, meter = await phase(loop("send", c, args.messages), quiet=not args.warmup)
        stored += r.ok
        record_send(out, c, r, meter)

    # delivery latency, one message at a time
    if args.delivery_messages:
        console.print("  delivery latency ...")
        sends = work.one_sender(args.delivery_messages)
        d, _ = await phase(
            lambda: delivery(
                target, url, sends, world.members[2], 30_000, 10.0, None, args.phase_timeout
            )
        )
        stored += d.delivered
        out["phases"]["delivery"] = d
        out["delivery_p50"], out["delivery_p99"] = d.delivery.p50_ms, d.delivery.p99_ms
        out["delivered"], out["delivery_error"] = f"{d.delivered}/{d.messages}", d.error

    # fan-in
    if args.fanin_messages:
        console.print(f"  fan-in, {len(world.members) - 1} senders ...")
        per_sender = work.fan_in(args.fanin_messages)
        f, _ = await phase(
            lambda: fan_in(target, url, per_sender, world.hub, 30_000, None, args.phase_timeout)
        )
        stored += f.received
        out["phases"]["fan_in"] = f
        out["fanin_rate"], out["fanin_p99"] = f.received_rate, f.delivery.p99_ms
        out["fanin_received"], out["fanin_error"] = f"{f.received}/{f.messages}", f.error

    # footprint after the load
    await asyncio.sleep(0.5)
    out["rss_after_mib"] = rss_mib(pids)
    peaks = [memory(p).hwm_kib for p in pids]
    out["rss_peak_mib"] = None if None in peaks else sum(v or 0 for v in peaks) / 1024
    await footprint.after(stored)
    fp = footprint.data
    out["db_bytes_per_msg"] = fp.get(
        "db_bytes_per_message_checkpointed", fp.get("db_bytes_per_message")
    )
    out["db_bytes_per_msg_with_wal"] = fp.get("db_bytes_per_message")
    out["messages_stored"] = stored
    out["other_cpu_max"] = max(phase.other, default=None)
    out["quiet_wait_s"] = phase.waited
    return out


async def measure_ceiling(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    """The uvicorn hello app and the no-op server, sent the same PUT requests as Clearpost
    (a real Megolm envelope of the same size, the same headers)."""
    account, group = vodozemac.Account(), vodozemac.GroupSession()
    envelope = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "sender_key": account.curve25519_key.to_base64(),
        "session_id": group.session_id,
        "device_id": "DEVICEID00",
        "ciphertext": group.encrypt(plaintext_for(200)).to_base64(),
    }
    body = orjson.dumps(envelope)
    headers = b"Content-Type: application/json\r\nAuthorization: Bearer %s\r\n" % (
        secrets.token_urlsafe(32).encode()
    )

    async def op(conn: Connection, i: int) -> None:
        r = await conn.request("PUT", f"/v1/conversations/c_0/messages/t{i}", body, headers)
        if r.status != 200:
            raise OSError(f"ceiling -> {r.status}")

    def loop(label: str, url: str, c: int) -> Callable[[], Awaitable[LoadResult]]:
        items = split(list(range(args.ceiling_requests)), c)
        return lambda: closed_loop(label, url, items, op, None, args.phase_timeout)

    out: dict[str, Any] = {"phases": {}}
    hello = start_hello(root)
    try:
        phase = Phases(hello, None, args.wait_quiet)
        out["startup_s"], out["rss_idle_mib"] = hello.startup_s, rss_mib(hello.pids)
        for c in args.levels:
            r, meter = await phase(loop("hello", hello.urls[0], c))
            record_send(out, c, r, meter)
        out["rss_after_mib"] = rss_mib(hello.pids)
        out["other_cpu_max"] = max(phase.other, default=None)
    finally:
        await hello.stop(keep=False)
    noop = start_noop()
    try:
        phase = Phases(Running([noop], 0.0), None, args.wait_quiet)
        r, _ = await phase(loop("no-op", noop.url, max(args.levels)))
        out["generator_ceiling"], out["phases"]["noop"] = r.rate, r
    finally:
        noop.stop()
    return out


# -- the run -------------------------------------------------------------------------------


async def one_run(
    args: argparse.Namespace,
    synapse_python: Path | None,
    source: Path | None,
    root: Path,
    plaintext: bytes,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for system in args.systems:
        console.print(f"[bold]{LABELS[system]}[/bold]: starting ...")
        if system == "ceiling":
            results[system] = await measure_ceiling(args, root)
            continue
        pg_url = None
        if system in ("postgres", "postgres2"):
            pg_url = (
                f"postgresql+asyncpg://postgres@127.0.0.1:5432/clearpost_cmp_{secrets.token_hex(4)}"
            )
            await pg_create(pg_url)
        try:
            if system == "synapse":
                assert synapse_python is not None  # installed before the first run
                running = start_synapse(synapse_python, root)
            else:
                running = start_clearpost(root, pg_url, source, 2 if system == "postgres2" else 1)
        except BaseException:
            if pg_url:
                await pg_drop(pg_url)
            raise
        console.print(f"  up in {running.startup_s:.2f} s at {', '.join(running.urls)}")
        try:
            results[system] = await measure(system, running, args, plaintext)
        finally:
            await running.stop(args.keep)
    return results


def medians(runs: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for system in {s for r in runs for s in r}:
        keys = {k for r in runs for k in r.get(system, {})}
        out[system] = {}
        for k in keys:
            vals = [r[system][k] for r in runs if isinstance(r.get(system, {}).get(k), int | float)]
            out[system][k] = statistics.median(vals) if vals else None
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


ROWS: list[tuple[str, str, str]] = [
    # (key, label, format)
    ("send_c1", "send msg/s, c=1", ",.0f"),
    ("send_c16", "send msg/s, c=16", ",.0f"),
    ("send_c64", "send msg/s, c=64", ",.0f"),
    ("send_p50_c64", "send p50 ms, c=64", ".1f"),
    ("send_p99_c64", "send p99 ms, c=64", ".1f"),
    ("server_cpu_c64", "server CPU, c=64 (% of a core)", ".0f"),
    ("pg_cpu_c64", "PostgreSQL CPU, c=64 (% of a core)", ".0f"),
    ("cpu_ms_per_msg_c64", "server+DB CPU ms per message, c=64", ".2f"),
    ("delivery_p50", "delivery p50 ms (one at a time)", ".1f"),
    ("delivery_p99", "delivery p99 ms (one at a time)", ".1f"),
    ("fanin_rate", "fan-in msg/s received (19 → 1)", ",.0f"),
    ("fanin_p99", "fan-in delivery p99 ms", ".0f"),
    ("rss_idle_mib", "resident memory idle, MiB", ".0f"),
    ("rss_after_mib", "resident memory after load, MiB", ".0f"),
    ("db_bytes_per_msg", "database bytes per message", ",.0f"),
    ("startup_s", "startup s (to first 200)", ".2f"),
    ("other_cpu_max", "other CPU, busiest phase (% of a core)", ".0f"),
]
LOWER_IS_BETTER = {"send_p50_c64", "send_p99_c64", "delivery_p50", "delivery_p99", "fanin_p99"}


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(med: dict[str, dict[str, float | None]], runs: int) -> None:
    systems = [s for s in SYSTEMS if s in med]
    t = Table(title=f"Clearpost vs Synapse vs the hello ceiling: medians of {runs} run(s)")
    t.add_column("")
    for s in systems:
        t.add_column(LABELS[s], justify="right")
    t.add_column("Clearpost SQLite / Synapse", justify="right")
    t.add_column("Clearpost SQLite / ceiling", justify="right")
    cp, syn, ceil = med.get("sqlite", {}), med.get("synapse", {}), med.get("ceiling", {})
    for key, label, spec in ROWS:
        if all(med[s].get(key) is None for s in systems):
            continue
        by_syn = _ratio(cp.get(key), syn.get(key))
        by_ceil = _ratio(cp.get(key), ceil.get(key)) if key.startswith("send_c") else None
        t.add_row(
            label,
            *(_fmt(med[s].get(key), spec) for s in systems),
            "-" if by_syn is None else f"{by_syn:,.2f}x",
            "-" if by_ceil is None else f"{by_ceil:.0%}",
        )
    if ceil.get("generator_ceiling") is not None:
        t.caption = (
            f"generator ceiling (no-op server, c={64}): {ceil['generator_ceiling']:,.0f} req/s"
        )
    console.print(t)


def _at_most(a: float | None, limit: float | None) -> bool | None:
    return None if a is None or limit is None else a <= limit


def targets(med: dict[str, dict[str, float | None]]) -> list[dict[str, Any]]:
    """The issue's targets for each Clearpost configuration, from the medians."""
    syn, ceil = med.get("synapse", {}), med.get("ceiling", {})
    rows: list[dict[str, Any]] = []
    for system in ("sqlite", "postgres", "postgres2"):
        cp = med.get(system)
        if cp is None:
            continue
        by_syn = _ratio(cp.get("send_c64"), syn.get("send_c64"))
        by_ceil = _ratio(cp.get("send_c64"), ceil.get("send_c64"))
        p99, syn_p99 = cp.get("delivery_p99"), syn.get("delivery_p99")
        db, syn_db = cp.get("db_bytes_per_msg"), syn.get("db_bytes_per_msg")
        rss, syn_rss = cp.get("rss_after_mib"), syn.get("rss_after_mib")
        up = cp.get("startup_s")
        checks = [
            (
                "send c=64 vs Synapse",
                ">= 50x",
                _fmt(by_syn, ",.0f") + "x",
                None if by_syn is None else by_syn >= 50,
            ),
            (
                "send c=64 vs hello ceiling",
                ">= 30%",
                _fmt(by_ceil and 100 * by_ceil, ".0f") + "%",
                None if by_ceil is None else by_ceil >= 0.30,
            ),
            (
                "delivery p99",
                f"<= {_fmt(syn_p99 and syn_p99 / 5, '.1f')} ms (Synapse/5)",
                _fmt(p99, ".1f") + " ms",
                _at_most(p99, syn_p99 and syn_p99 / 5),
            ),
            (
                "database bytes/message",
                f"<= {_fmt(syn_db and syn_db / 10, ',.0f')} (Synapse/10)",
                _fmt(db, ",.0f"),
                _at_most(db, syn_db and syn_db / 10),
            ),
            (
                "resident memory after load",
                f"< {_fmt(syn_rss, '.0f')} MiB (Synapse)",
                _fmt(rss, ".0f") + " MiB",
                None if rss is None or syn_rss is None else rss < syn_rss,
            ),
            ("startup", "< 1 s", _fmt(up, ".2f") + " s", None if up is None else up < 1.0),
        ]
        for name, wanted, measured, met in checks:
            rows.append(
                {"system": LABELS[system], "target": name, "wanted": wanted}
                | {"measured": measured, "met": met}
            )
    return rows


def print_targets(rows: list[dict[str, Any]]) -> None:
    t = Table(title="Targets (from the medians)")
    for col in ("system", "target", "wanted", "measured", "result"):
        t.add_column(col, justify="right" if col in ("wanted", "measured") else "left")
    for r in rows:
        verdict = {True: "[green]met[/green]", False: "[red]MISSED[/red]", None: "-"}[r["met"]]
        t.add_row(r["system"], r["target"], r["wanted"], r["measured"], verdict)
    console.print(t)


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


async def main_async(args: argparse.Namespace) -> int:
    synapse_python, version = None, None
    if "synapse" in args.systems:
        synapse_python, version = ensure_synapse(args.synapse_venv, args.synapse_spec)
    root = WORK / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    cleanup: list[Path] = []  # the exported source: removed even with --keep
    root.mkdir(parents=True, exist_ok=True)
    plaintext = plaintext_for(200)
    source: Path | None = None
    if args.commit == "worktree":
        commit, dirty = git_state()
    else:
        exported, commit = export_commit(args.commit)
        source, dirty = exported / "src", False
        cleanup.append(exported)
    meta = {
        "synapse": version,
        "commit": commit,
        "src_modified": dirty,
        "cpus": os.cpu_count(),
        "argv": sys.argv[1:],
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_before": load_average(),
    }
    console.print(
        f"Synapse {version}, Clearpost {commit}{' (src/ modified)' if dirty else ''}; "
        f"{args.runs} run(s) of {', '.join(args.systems)}"
    )
    runs: list[dict[str, dict[str, Any]]] = []
    t0 = time.perf_counter()
    try:
        for i in range(args.runs):
            console.print(f"\n[bold]run {i + 1} of {args.runs}[/bold]")
            runs.append(await one_run(args, synapse_python, source, root, plaintext))
    finally:
        for d in cleanup if args.keep else [root, *cleanup]:
            shutil.rmtree(d, ignore_errors=True)
    meta["seconds"] = round(time.perf_counter() - t0)
    meta["load_after"] = load_average()
    med = medians(runs)
    console.print()
    print_table(med, len(runs))
    rows = targets(med)
    print_targets(rows)
    busy = sorted(
        {
            LABELS[s]
            for r in runs
            for s, m in r.items()
            if (m.get("other_cpu_max") or 0) > BUSY_OTHER_PCT
        }
    )
    for r in runs:
        for s, m in r.items():
            for k in ("delivery_error", "fanin_error"):
                if m.get(k):
                    console.print(f"[red]{LABELS[s]}: {k}: {m[k]}[/red]")
    if busy:
        console.print(
            f"[yellow]other processes used over {BUSY_OTHER_PCT:.0f}% of a core during some "
            f"phases of: {', '.join(busy)} (load average {meta['load_before']} before, "
            f"{meta['load_after']} after); those numbers are less reliable.[/yellow]"
        )
    console.print(f"{meta['seconds']} s in all")
    if args.json:
        data = {"meta": meta, "medians": med, "targets": rows, "runs": _plain(runs)}
        args.json.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
        console.print(f"written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return uvloop.run(main_async(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
