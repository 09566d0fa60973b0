"""Hostile clients against ``clearpost serve``: unfinished huge headers and slow loris.

Runs the same two attacks against the server of an earlier commit (``--before``, the peer:
the code before the request-head bounds) and against the working tree, in one run, with
the default settings each has, and prints:

- **header flood**: ``--connections`` clients each start one request and send an
  ``X-Big`` header of ``--header-mib`` MiB, never ending it, all at once; the server's
  RSS before, its peak (VmHWM) and its RSS while they are still connected, how many MiB
  the server took in, and how many connections it had closed;
- **one huge header**: a single finished request with such a header: the status line
  returned (or ``closed``);
- **slow loris**: ``--slow`` clients each send a request head one byte every
  ``--byte-every`` seconds; how many are still open after ``--hold`` seconds.

Only 127.0.0.1 is contacted; both servers run on SQLite in temporary directories that are
removed afterwards. A run takes about ``2 * --hold`` seconds plus the floods.

    .venv/bin/python bench/serve_limits.py [--before REV] [--connections 60] [--header-mib 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from launch import Launched, export_commit, memory, start_clearpost

CHUNK = 64 * 1024
HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "


@dataclass
class Flood:
    rss_before_mib: float
    rss_during_mib: float
    peak_mib: float
    sent_mib: float
    closed_by_server: int


@dataclass
class Result:
    label: str
    flood: Flood
    huge: str
    slow_open: int


def _mib(kib: int | None) -> float:
    return (kib or 0) / 1024


class _Flood:
    """The clients' shared state: how many have sent all they will, and when to let go."""

    def __init__(self, connections: int) -> None:
        self.connections, self.finished = connections, 0
        self.all_sent, self.stop = asyncio.Event(), asyncio.Event()

    def sent(self) -> None:
        self.finished += 1
        if self.finished == self.connections:
            self.all_sent.set()


async def _flood_one(port: int, size: int, flood: _Flood) -> tuple[int, bool]:
    """Send an endless header until ``size`` bytes or until the server closes, then hold
    the connection until told to stop: (bytes sent, closed by the server)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sent, closed = 0, False
    try:
        writer.write(HEAD)
        block = b"a" * CHUNK
        while sent < size:
            writer.write(block)
            await writer.drain()
            sent += CHUNK
    except (ConnectionError, OSError):
        closed = True
    flood.sent()
    try:
        await flood.stop.wait()
        if not closed:
            # the server answered (431) or ended the stream: it closed the connection;
            # nothing within half a second: it still holds the unfinished request
            await asyncio.wait_for(reader.read(65536), 0.5)
            closed = True
    except TimeoutError:  # (an OSError too: caught first)
        pass
    except (ConnectionError, OSError):
        closed = True
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    return sent, closed


async def header_flood(server: Launched, connections: int, size: int) -> Flood:
    port = int(server.url.rsplit(":", 1)[1])
    before = memory(server.pid)
    flood = _Flood(connections)
    tasks = [asyncio.create_task(_flood_one(port, size, flood)) for _ in range(connections)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(flood.all_sent.wait(), 120)
    await asyncio.sleep(1.0)  # the server has read what it will read
    during = memory(server.pid)
    flood.stop.set()
    results = await asyncio.gather(*tasks)
    return Flood(
        _mib(before.rss_kib),
        _mib(during.rss_kib),
        _mib(during.hwm_kib),
        sum(sent for sent, _ in results) / (1 << 20),
        sum(1 for _, closed in results if closed),
    )


async def huge_header(server: Launched, size: int) -> str:
    port = int(server.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HEAD + b"a" * size + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 30)
        return line.decode(errors="replace").strip() or "closed"
    except (ConnectionError, OSError, TimeoutError):
        return "closed"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _loris(port: int, every: float, hold: float) -> bool:
    """True if the connection is still open after ``hold`` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: 1\r\n" * 1000
    start = time.monotonic()
    try:
        for byte in head:
            if time.monotonic() - start > hold:
                return True
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1024), every) or reader.at_eof():
                    return False  # the server answered (408) or closed
            if reader.at_eof():
                return False
        return True
    except (ConnectionError, OSError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def slow_loris(server: Launched, clients: int, every: float, hold: float) -> int:
    port = int(server.url.rsplit(":", 1)[1])
    held = await asyncio.gather(*(_loris(port, every, hold) for _ in range(clients)))
    return sum(held)


async def measure(label: str, source: Path | None, args: argparse.Namespace) -> Result:
    server, _ = start_clearpost(None, source=source)
    try:
        size = int(args.header_mib * (1 << 20))
        flood = await header_flood(server, args.connections, size)
        huge = await huge_header(server, size)
        slow = await slow_loris(server, args.slow, args.byte_every, args.hold)
        if not server.alive():
            raise RuntimeError(f"{label}: the server died:\n{server.log_tail()}")
        return Result(label, flood, huge, slow)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--before", default=None, help="peer commit (default: merge-base with main)"
    )
    parser.add_argument("--connections", type=int, default=60)
    parser.add_argument("--header-mib", type=float, default=8.0)
    parser.add_argument("--slow", type=int, default=20, help="slow-loris clients")
    parser.add_argument("--byte-every", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=25.0)
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    before = (
        args.before
        or subprocess.run(
            ["git", "merge-base", "HEAD", "main"],
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            timeout=10,
        ).stdout.strip()
    )
    source, short = export_commit(before)
    results = [
        asyncio.run(measure(f"before ({short})", source, args)),
        asyncio.run(measure("after (working tree)", None, args)),
    ]
    print(
        f"header flood: {args.connections} connections x {args.header_mib:g} MiB unfinished "
        f"header; slow loris: {args.slow} clients, a byte every {args.byte_every:g} s, "
        f"checked after {args.hold:g} s"
    )
    print(
        f"{'server':<22} {'RSS idle':>9} {'RSS flood':>10} {'peak':>8} {'sent':>9} "
        f"{'cut off':>8}  {'one huge header':<42} {'slow held':>9}"
    )
    for r in results:
        f = r.flood
        print(
            f"{r.label:<22} {f.rss_before_mib:>7.0f}Mi {f.rss_during_mib:>8.0f}Mi "
            f"{f.peak_mib:>6.0f}Mi {f.sent_mib:>7.0f}Mi "
            f"{f.closed_by_server:>5}/{args.connections:<2}  {r.huge[:42]:<42} "
            f"{r.slow_open:>5}/{args.slow}"
        )


if __name__ == "__main__":
    main()
