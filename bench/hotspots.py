"""Sample the server with py-spy while it is under load, and rank where its time goes.

py-spy is optional (``pip install py-spy``); it attaches to the running server by pid and
writes collapsed stacks (``--format raw``), one line per distinct stack with its sample
count. From those we rank functions by *self* share (the function was the innermost
Python frame) and *inclusive* share (the function was anywhere on the stack), and
packages by self share, so the output says both what is hot and what to look at first.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from launch import cpu_seconds

__all__ = ["Profile", "Sampler", "parse_raw", "py_spy_path", "task_cpu"]


def py_spy_path() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


# Frames that sit under every sample (process start-up, the event loop's run call):
# left out of the inclusive ranking, where they would only crowd out the useful rows.
_PLUMBING = (
    "<frozen runpy>",
    "typer/",
    "threading.py",
    "clearpost/__main__.py",
    "clearpost/cli/",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "asyncio/base_events.py",
    "concurrent/futures/thread.py",
)


@dataclass
class Profile:
    """Where the server spent the samples py-spy took (with ``--gil``: Python CPU time)."""

    samples: int
    threads: Counter[str] = field(default_factory=Counter)
    self_time: Counter[str] = field(default_factory=Counter)
    """innermost frame, with its line"""
    inclusive: Counter[str] = field(default_factory=Counter)
    """any frame on the stack, per function"""
    packages: Counter[str] = field(default_factory=Counter)
    thread_names: dict[int, str] = field(default_factory=dict)
    thread_cpu: dict[str, float] = field(default_factory=dict)
    """CPU used per kind of thread over the sampled window, in % of one core (/proc)."""

    def top(self, counter: Counter[str], n: int) -> list[tuple[str, float]]:
        total = self.samples or 1
        return [(name, count / total) for name, count in counter.most_common(n)]

    def ours(self, n: int) -> list[tuple[str, float]]:
        """Inclusive ranking of Clearpost's own functions: which use case costs what."""
        mine = Counter({k: v for k, v in self.inclusive.items() if "(clearpost/" in k})
        return self.top(mine, n)

    def below_dispatch(self, n: int, ceiling: float = 0.4) -> list[tuple[str, float]]:
        """Inclusive ranking of library functions under the request dispatch: frames on more
        than ``ceiling`` of all samples (the ASGI middleware chain every request passes
        through) are left out, so the rows show what the requests spend their time on."""
        limit = ceiling * self.samples
        libs = Counter(
            {k: v for k, v in self.inclusive.items() if "(clearpost/" not in k and v <= limit}
        )
        return self.top(libs, n)

    def as_json(self, n: int = 25) -> dict[str, object]:
        return {
            "samples": self.samples,
            "threads_by_samples": self.top(self.threads, 10),
            "thread_cpu_pct_of_core": self.thread_cpu,
            "self": self.top(self.self_time, n),
            "inclusive": self.top(self.inclusive, n),
            "inclusive_clearpost": self.ours(n),
            "inclusive_libraries_below_dispatch": self.below_dispatch(n),
            "packages": self.top(self.packages, 15),
        }


def thread_kind(name: str) -> str:
    if name == "MainThread":
        return "main thread (event loop)"
    if "_connection_worker_thread" in name:
        return "aiosqlite connection threads"
    if name.startswith("AnyIO worker"):
        return "AnyIO thread pool (sync dependencies)"
    if name.startswith("asyncio_"):
        return "asyncio default executor"
    return name


def _package(frame: str) -> str:
    """``func (sqlalchemy/engine/base.py:12)`` -> ``sqlalchemy``; stdlib modules by file."""
    path = _location(frame).rpartition(":")[0]
    if "/" in path:
        return path.split("/", 1)[0]
    return path.removesuffix(".py") or "?"


def _location(frame: str) -> str:
    return frame.rpartition(" (")[2].rstrip(")")


def _function(frame: str) -> str:
    """``f (a/b.py:12)`` -> ``f (a/b.py)``: all lines of one function together."""
    name, _, location = frame.rpartition(" (")
    return f"{name} ({location.rstrip(')').rpartition(':')[0]})"


def _plumbing(frame: str) -> bool:
    location = _location(frame)
    if "anyio/_backends/_asyncio.py" in location and frame.startswith("WorkerThread"):
        return True
    return any(location.startswith(p) or f"/{p}" in location for p in _PLUMBING)


def parse_raw(text: str) -> Profile:
    """Collapsed stacks, as written by ``py-spy record --format raw --threads``."""
    prof = Profile(samples=0)
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        thread = "?"
        if frames[0].startswith("thread ("):
            head, _, thread = frames.pop(0).partition(": ")
            tid = head.removeprefix("thread (").rstrip(")")
            if tid.isdigit():
                prof.thread_names[int(tid)] = thread
        if not frames:
            continue
        prof.samples += count
        prof.threads[thread_kind(thread)] += count
        prof.self_time[frames[-1]] += count
        prof.packages[_package(frames[-1])] += count
        for fn in {_function(f) for f in frames if not _plumbing(f)}:
            prof.inclusive[fn] += count
    return prof


def task_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of every thread of ``pid``."""
    out: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return out


class Sampler:
    """``py-spy record`` attached to ``pid`` until ``stop()``."""

    def __init__(self, pid: int, out: Path, rate: int = 200) -> None:
        exe = py_spy_path()
        if exe is None:
            raise RuntimeError("py-spy is not installed (.venv/bin/pip install py-spy)")
        self.out = out
        self.log = out.with_suffix(".log")
        cmd = [
            exe,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--rate",
            str(rate),
            "--threads",
            "--gil",
            "--nonblocking",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # let it attach before the load starts
        if self.process.poll() is not None:
            raise RuntimeError(f"py-spy exited: {self.log.read_text(errors='replace')[-500:]}")
        self.pid = pid
        self._cpu0, self._t0 = task_cpu(pid), time.perf_counter()
        self._process0 = cpu_seconds(pid)

    def stop(self) -> Profile:
        cpu1, wall = task_cpu(self.pid), time.perf_counter() - self._t0
        process1 = cpu_seconds(self.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if not self.out.exists():
            raise RuntimeError(
                f"py-spy wrote nothing: {self.log.read_text(errors='replace')[-500:]}"
            )
        prof = parse_raw(self.out.read_text(errors="replace"))
        by_kind: dict[str, float] = defaultdict(float)
        for tid, seconds in cpu1.items():
            name = prof.thread_names.get(tid, "threads never seen holding the GIL")
            by_kind[thread_kind(name)] += seconds - self._cpu0.get(tid, 0.0)
        ended = (process1 - self._process0) - sum(by_kind.values())
        if ended > 0.01 * wall:
            by_kind["threads that ended during the run"] += ended
        ranked = sorted(by_kind.items(), key=lambda kv: -kv[1])
        prof.thread_cpu = {k: round(100 * v / wall, 1) for k, v in ranked}
        return prof
