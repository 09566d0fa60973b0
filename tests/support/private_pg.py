"""A private PostgreSQL server that a test may stop, kill and start again.

(The same as the dbfaults work's ``tests/support/pg.py``, written in parallel; keep one.)

Tests must never stop the shared server on 5432 (other runs depend on it), so a test that
needs a database outage runs its own: ``initdb`` into a fresh directory, ``pg_ctl`` on a
free port, listening on 127.0.0.1 and a Unix socket inside that directory only.

``initdb`` refuses to run as root, so as root every PostgreSQL command runs as the
``postgres`` user (``runuser -u postgres --``) in a directory that user owns. The binaries
come from ``CLEARPOST_PG_BIN`` (default ``/usr/lib/postgresql/15/bin``).

    with PrivatePostgres.create() as pg:
        url = pg.url("clearpost")          # an SQLAlchemy asyncpg URL
        pg.stop("fast")                    # or "immediate" (a crash) / "smart"
        pg.start()
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

from tests.support.server import free_port

PG_BIN = Path(os.environ.get("CLEARPOST_PG_BIN", "/usr/lib/postgresql/15/bin"))
StopMode = Literal["smart", "fast", "immediate"]


def available() -> str | None:
    """None when a private server can be made here, else why not."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries at {PG_BIN} (set CLEARPOST_PG_BIN)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser, so initdb cannot run"
    return None


def _as_owner() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PrivatePostgres:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @classmethod
    def create(cls) -> PrivatePostgres:
        """initdb a new cluster (trust auth, user ``postgres``) and start it."""
        reason = available()
        if reason is not None:
            raise RuntimeError(reason)
        root = Path(tempfile.mkdtemp(prefix="clearpost-pg-"))
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pg = cls(root, free_port())
        try:
            pg._run(
                "initdb",
                "-D",
                str(pg.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            with (pg.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nport = {pg.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{pg.root}'\n"
                    # the OS keeps what was written (an immediate stop is a process crash,
                    # not a machine crash), so skipping fsync loses nothing here
                    "fsync = off\nmax_connections = 200\n"
                )
            pg.start()
        except BaseException:
            pg.destroy()
            raise
        return pg

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """The plain libpq/asyncpg DSN."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or restart after a stop) and wait until it accepts connections."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-w", "start")

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop it: ``fast`` rolls back and disconnects every session, ``immediate`` kills
        the server without a checkpoint (it recovers from its WAL on the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        result = subprocess.run(
            [*_as_owner(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def create_database(self, name: str) -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def destroy(self) -> None:
        """Stop it (immediately) if it runs, and remove its directory."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *_as_owner(),
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [*_as_owner(), str(PG_BIN / tool), *args],
            capture_output=True,
            cwd=self.root,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
                f"\n{log[-2000:]}"
            )

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


def wait_until(check: Callable[[], bool], timeout: float = 30.0, every: float = 0.1) -> None:
    """Poll ``check()`` until it is true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"not true within {timeout} s")


def create_or_skip() -> PrivatePostgres:
    """A new private server; skips the test when none can be made here, and fails it
    under ``CI=true`` (CI must run the outage tests)."""
    import pytest

    reason = available()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: a private PostgreSQL is needed here ({reason})")
        pytest.skip(reason)
    return PrivatePostgres.create()
