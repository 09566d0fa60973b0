"""More processes for the tile audit: full level-0 tiles read and checked alongside it.

A fresh audit of a big log is CPU-bound in the auditor: a million leaf hashes and a million
node hashes, each a ``hashlib`` call (with OpenSSL 3, most of its cost is per call, not per
byte, so nothing in one process makes them much cheaper). ``TileHelper.start`` forks helper
processes before the audit's event loop starts; each at once reads the log's checkpoint
(unverified: only to know which tiles are full) and takes level-0 tiles to check, two at a
time, from a counter shared with the audit, which takes its own from the same counter once
it has verified the checkpoint. So the helpers also use the time the auditor spends
starting and verifying the checkpoint, and every process is busy to the end.

A helper does exactly what ``read_tree`` does for a tile (the same functions): re-hash the
256 entries of the bundle, recompute the stored tile from them and compare it byte for
byte with the one served. It reports only tiles that were in order — full, exactly 256
entries, every node equal — with the tile's root (which the level above is built from)
and, for a bundle holding the entry sink's marker, its entries. Whatever else it met (an
error, a missing entry, a node that differs, an answer it could not read) it leaves out,
and ``read_tree`` reads and judges that tile itself, as it does every tile no helper
reported, with its own messages and in the order of the tiles. A full tile never changes,
so a helper's check holds for any size the audit verifies; tiles that are not full at the
verified size, or that the audit keeps for its roots, are read by the audit itself.

Helpers are forked (Linux only), so they need no start-up of their own and nothing of the
audit's state is sent to them; their results come back through a pipe, pickled (plain
bytes, ints and lists). ``TileHelper.close`` ends and reaps them. ``clearpost audit
verify`` forks them first thing (``cli/entry.py``), once this module and what the helpers
run are imported and before the command line framework is: they work while it loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import pickle
import signal
import struct
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from typing import Any

import uvloop

from clearpost.audit.http import LogClient
from clearpost.audit.tileaudit import fetch_tiles, level0_tile, pipelined
from clearpost.core.tlog.entries import KEYDIR_MARKER

__all__ = [
    "HelperResult",
    "TileHelper",
    "close_early",
    "default_processes",
    "start_early",
    "take_early",
]

_GROUP = 2  # tiles per claim, as read_tree fetches them
_COUNTER = struct.Struct("q")


@dataclass
class HelperResult:
    """What the helpers checked: tile index -> (root, the bodies of a bundle that holds
    the marker, else None)."""

    tiles: dict[int, tuple[bytes, list[bytes] | None]] = field(default_factory=dict)


class TileHelper:
    """Helper processes checking full level-0 tiles of the log at ``url``."""

    def __init__(self, pids: list[int], fds: list[int], shared: mmap.mmap, lock: Any) -> None:
        self.pids, self.fds, self._shared, self._lock = pids, fds, shared, lock
        self._claiming = True

    @classmethod
    def start(cls, url: str, marker: bytes, processes: int) -> TileHelper | None:
        """Fork ``processes - 1`` helpers for a tile audit of the log at ``url``
        (``marker``: the entry sink's, whose bundles' entries they send back). None when
        no helper is started: one process asked for, or no ``fork`` here."""
        if processes < 2 or not sys.platform.startswith("linux"):
            return None
        shared = mmap.mmap(-1, _COUNTER.size)
        lock = get_context("fork").Lock()
        pids, fds = [], []
        for _ in range(processes - 1):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # the helper: never returns
                os.close(read_end)
                _helper_main(url, marker, shared, lock, write_end)
            os.close(write_end)
            pids.append(pid)
            fds.append(read_end)
        return cls(pids, fds, shared, lock)

    def claims(self, tiles: int) -> Iterator[Sequence[int]]:
        """The audit's share of level-0 tiles ``[0, tiles)``: groups of tile indexes,
        taken from the counter the helpers take theirs from, in increasing order."""
        return _claims(self._shared, self._lock, (tiles + _GROUP - 1) // _GROUP, tiles)

    async def results(self, grace: float = 60.0) -> HelperResult:
        """The helpers' results, once they have finished (a helper that failed or
        reported nothing adds nothing: the audit reads those tiles itself). Called when
        the audit has claimed its last tile, so a helper has only its last few groups
        left; one not done ``grace`` seconds later (a stuck connection) is ended and
        counts as having reported nothing."""
        loop = asyncio.get_running_loop()
        merged = HelperResult()
        reads = asyncio.gather(*(loop.run_in_executor(None, _read_all, fd) for fd in self.fds))
        try:
            got = await asyncio.wait_for(asyncio.shield(reads), grace)
        except TimeoutError:
            self._kill()  # their pipes' write ends close: the reads end
            await asyncio.gather(reads, return_exceptions=True)
            self._reap(kill=False)
            return merged
        for data in got:
            with contextlib.suppress(Exception):  # a helper killed mid-write: nothing
                tiles = pickle.loads(data) if data else {}
                if isinstance(tiles, dict):
                    merged.tiles.update(tiles)
        self._reap(kill=False)
        return merged

    def close(self) -> None:
        """End the helpers (if still running) and release what they used."""
        self._reap(kill=True)
        self._shared.close()

    def _kill(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _reap(self, *, kill: bool) -> None:
        if kill:
            self._kill()
        for pid in self.pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pids, self.fds = [], []


def default_processes() -> int:
    """Processes for a tile audit unless told: two where there are two cores or more."""
    return min(2, os.cpu_count() or 1)


_early: tuple[str, int, TileHelper] | None = None


def start_early(args: Sequence[str]) -> None:
    """Given the arguments of ``clearpost audit verify``, fork its helpers now if they ask
    for a tile audit with helpers of a plain http(s) server; anything else (help, --proofs,
    an odd spelling) is left to the command, which starts its own."""
    global _early
    server, processes = None, default_processes()
    words = iter(args)
    for word in words:
        name, eq, value = word.partition("=")
        if name in ("--proofs", "--help", "-h"):
            return
        if name in ("--server", "--processes"):
            value = value if eq else next(words, "")
            if name == "--server":
                server = value
            elif value.isdigit():
                processes = int(value)
            else:
                return
    if server is None or not server.startswith(("http://", "https://")):
        return
    url = server.rstrip("/")
    helper = TileHelper.start(url, KEYDIR_MARKER, processes)
    if helper is not None:
        _early = (url, processes, helper)


def take_early(url: str, processes: int) -> TileHelper | None:
    """The helpers ``start_early`` forked, if for this server and number of processes."""
    global _early
    early, _early = _early, None
    if early is None:
        return None
    if early[:2] == (url, processes):
        return early[2]
    early[2].close()
    return None


def close_early() -> None:
    """End helpers forked early that the command did not take."""
    if (helper := take_early("", 0)) is not None:
        helper.close()


def _claims(shared: mmap.mmap, lock: Any, groups: int, tiles: int) -> Iterator[Sequence[int]]:
    """Take groups of ``_GROUP`` tiles (of ``[0, tiles)``) from the shared counter, while
    it is below ``groups``."""
    while True:
        with lock:
            (g,) = _COUNTER.unpack_from(shared, 0)
            if g >= groups:
                return
            _COUNTER.pack_into(shared, 0, g + 1)
        yield range(g * _GROUP, min(g * _GROUP + _GROUP, tiles))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _helper_main(url: str, marker: bytes, shared: mmap.mmap, lock: Any, fd: int) -> None:
    """The helper process: check tiles until none is left, write the results, exit
    (``os._exit``: nothing of the parent's may run here, not even its exit handlers)."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the audit's Ctrl-C ends it instead
        asyncio.events._set_running_loop(None)  # forked inside a running loop (tests)
        tiles = uvloop.run(_check_tiles(url, marker, shared, lock))
        data = pickle.dumps(tiles, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:  # the audit reads whatever was not reported
        code = 1
    finally:
        os._exit(code)


async def _check_tiles(
    url: str, marker: bytes, shared: mmap.mmap, lock: Any
) -> dict[int, tuple[bytes, list[bytes] | None]]:
    done: dict[int, tuple[bytes, list[bytes] | None]] = {}
    client = LogClient(url)
    try:
        note = await client.checkpoint()
        size = int(note.split("\n")[1])  # unverified: only which tiles are full
        full = size // 256  # a helper takes groups of full tiles only
        claims = _claims(shared, lock, full // _GROUP, full)

        async def fetch(group: Sequence[int]) -> list[Any]:
            try:
                return await fetch_tiles(client, size, 0, group)
            except Exception:  # left for the audit to read and judge
                return []

        async for group, fetched in pipelined(fetch, claims, 16):
            for n, got in zip(group, fetched, strict=False):
                checked = level0_tile(got, marker)
                if checked is not None:
                    done[n] = checked
    finally:
        client.close()
    return done
