"""Start and stop what the benchmark runs against, and read the server's footprint.

Everything here binds or connects to 127.0.0.1 only. A PostgreSQL database is created
fresh for the run and dropped afterwards; an existing database of the same name is
refused, never reused or dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import io
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

__all__ = [
    "BENCH_ENV",
    "PG_DEFAULT",
    "Footprint",
    "Launched",
    "Memory",
    "add_postgres_option",
    "check_local",
    "command_cpu_seconds",
    "cpu_seconds",
    "export_commit",
    "free_port",
    "git_state",
    "load_average",
    "machine_busy_seconds",
    "memory",
    "pg_create",
    "pg_drop",
    "pg_size",
    "sqlite_checkpoint",
    "sqlite_size",
    "start_clearpost",
    "start_noop",
]

# Fast password hashing and no rate limits: the bench measures messaging, not argon2.
BENCH_ENV = {
    "CLEARPOST_ARGON2_TIME_COST": "1",
    "CLEARPOST_ARGON2_MEMORY_KIB": "8192",
    "CLEARPOST_LOGIN_RATE_PER_MINUTE": "0",
    "CLEARPOST_TOKEN_RATE_PER_SECOND": "0",
    "CLEARPOST_LOG_LEVEL": "warning",
}
LOCAL_HOSTS = ("127.0.0.1",)


def check_local(url: str) -> None:
    """Refuse any URL that does not point at 127.0.0.1."""
    host = urlsplit(url).hostname
    if host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing {url!r}: the load generator only talks to 127.0.0.1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Launched:
    """A child process we started; ``stop()`` ends it (and only it)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    cleanup: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _wait_ready(launched: Launched, path: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if not launched.alive():
            raise RuntimeError(f"server exited early:\n{launched.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(launched.url + path, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    launched.stop()
    raise RuntimeError(
        f"server did not answer {path} within {deadline_s} s:\n{launched.log_tail()}"
    )


def export_commit(rev: str) -> tuple[Path, str]:
    """``src/`` of commit ``rev`` in a new temporary directory, and the commit's short id:
    the server can then run one exact commit while the checkout is being edited."""
    root = Path(__file__).resolve().parent.parent
    short = subprocess.run(
        ["git", "rev-parse", "--short", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        timeout=10,
        cwd=root,
    )
    if short.returncode != 0:
        raise SystemExit(f"--commit {rev!r}: {short.stderr.strip()}")
    out = Path(tempfile.mkdtemp(prefix="clearpost-src-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", short.stdout.strip(), "src"],
        capture_output=True,
        timeout=60,
        cwd=root,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(out, filter="data")
    # byte-compiled, as `pip install` leaves an installed package (and as Synapse's is): the
    # first server start then measures starting, not compiling
    compileall.compile_dir(out, quiet=1)
    return out, short.stdout.strip()


def start_clearpost(
    database: str | None,
    keep: bool = False,
    source: Path | None = None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
    ready_within: float = 60,
) -> tuple[Launched, Path]:
    """``clearpost serve`` on a free port with a temporary data dir (or ``data_dir``, kept);
    returns it and the dir. With ``source`` (from ``export_commit``) the server runs that
    code, not the checkout's; ``env`` is added to the bench's environment."""
    if data_dir is not None:
        keep = True
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="clearpost-bench-"))
    port = free_port()
    log_path = data_dir / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "clearpost",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    if database:
        cmd += ["--database", database]
    env = {**os.environ, **BENCH_ENV, **(env or {})}
    if source is not None:  # ahead of the editable install's path entry
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(source / "src"), env.get("PYTHONPATH")])
        )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    cleanup = [] if keep else [data_dir, *([source] if source else [])]
    launched = Launched(f"http://127.0.0.1:{port}", proc, log_path, cleanup)
    _wait_ready(launched, "/health", ready_within)
    return launched, data_dir


def start_noop() -> Launched:
    port = free_port()
    script = Path(__file__).with_name("noop_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    launched = Launched(f"http://127.0.0.1:{port}", proc)
    _wait_ready(launched, "/", 15)
    return launched


# -- PostgreSQL ---------------------------------------------------------------------------


def _pg_parts(url: str) -> tuple[str, str]:
    """(admin DSN for the ``postgres`` database, the benchmark database's name)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        raise SystemExit(f"--database must be a postgresql URL, got {url!r}")
    check_local(url)
    name = parts.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"database name {name!r} must be letters, digits and '_'")
    admin = parts._replace(scheme="postgresql", path="/postgres").geturl()
    return admin, name


PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def add_postgres_option(parser: argparse.ArgumentParser) -> None:
    """``--postgres [URL]``: serve from a fresh database on that PostgreSQL server (created
    with ``pg_create``, dropped with ``pg_drop``; the URL's own database name is replaced)."""
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_DEFAULT,
        metavar="URL",
        help=f"serve from a fresh database on this PostgreSQL server (default {PG_DEFAULT})",
    )


async def pg_create(url: str) -> None:
    admin, name = _pg_parts(url)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            raise SystemExit(
                f"database {name!r} already exists; pick a new name (it is dropped after the run)"
            )
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def pg_drop(url: str) -> None:
    admin, name = _pg_parts(url)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def pg_size(url: str) -> int:
    admin, name = _pg_parts(url)
    conn = await asyncpg.connect(admin, timeout=10)
    try:
        return int(await conn.fetchval("SELECT pg_database_size($1)", name))
    finally:
        await conn.close()


# -- footprint ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int | None
    hwm_kib: int | None


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM (peak) from /proc/<pid>/status."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    except OSError:
        pass
    return Memory(values.get("VmRSS"), values.get("VmHWM"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of ``pid`` so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def command_cpu_seconds(command: str) -> float:
    """CPU seconds so far of every running process named ``command`` (e.g. "postgres")."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.find("(") + 1 : text.rfind(")")]
        if name == command:
            fields = text.rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def load_average() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return None


def sqlite_size(db_path: Path) -> int:
    """Bytes of the SQLite file plus its write-ahead log."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += Path(str(db_path) + suffix).stat().st_size
    return total


def sqlite_checkpoint(db_path: Path) -> bool:
    """Fold the WAL into the main file and truncate it, so the file size shows the data."""
    try:
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(busy == 0)


class Footprint:
    """Server memory and database size, before and after the measured load."""

    def __init__(self, pid: int | None, sqlite_path: Path | None, pg_url: str | None) -> None:
        self.pid, self.sqlite_path, self.pg_url = pid, sqlite_path, pg_url
        self.data: dict[str, Any] = {}
        self._db_before: int | None = None
        self._main_before = 0

    async def _db_bytes(self) -> int | None:
        if self.sqlite_path is not None:
            return sqlite_size(self.sqlite_path)
        if self.pg_url is not None:
            return await pg_size(self.pg_url)
        return None

    async def before(self) -> None:
        if self.pid:
            self.data["rss_idle_kib"] = memory(self.pid).rss_kib
            cpu0, t0 = cpu_seconds(self.pid), time.perf_counter()
            await asyncio.sleep(2.0)  # background work shows up here: it should be ~0
            self.data["cpu_idle_pct"] = round(
                100 * (cpu_seconds(self.pid) - cpu0) / (time.perf_counter() - t0), 1
            )
        if self.sqlite_path is not None:
            self.data["checkpoint_before"] = sqlite_checkpoint(self.sqlite_path)
            self._main_before = self.sqlite_path.stat().st_size
        self._db_before = await self._db_bytes()

    async def after(self, messages: int) -> None:
        if self.pid:
            mem = memory(self.pid)
            self.data["rss_after_kib"], self.data["rss_peak_kib"] = mem.rss_kib, mem.hwm_kib
        self.data["messages_stored"] = messages
        db_after = await self._db_bytes()
        if db_after is not None and self._db_before is not None and messages:
            self.data["db_bytes_per_message"] = (db_after - self._db_before) / messages
            self.data["db_measure"] = (
                "SQLite file + WAL, size delta" if self.sqlite_path else "pg_database_size delta"
            )
        if self.sqlite_path is not None and messages:
            self.data["checkpoint_after"] = sqlite_checkpoint(self.sqlite_path)
            self.data["db_bytes_per_message_checkpointed"] = (
                self.sqlite_path.stat().st_size - self._main_before
            ) / messages


def git_state() -> tuple[str | None, bool | None]:
    """(short commit, whether src/ has uncommitted changes) of the checkout under test."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=root,
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=root,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty
