"""The workload: setting up users and conversations, and the timed phases.

Every phase is bounded twice: by a fixed count of requests, and by a wall-clock timeout
(``asyncio.timeout``) so a stuck server ends the run instead of hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import vodozemac
from http1 import Connection, HTTPError, connect
from launch import command_cpu_seconds, cpu_seconds, machine_busy_seconds
from target import Ciphertext, Session, Target

T = TypeVar("T")

PASSWORD = "bench password 0123"


# -- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Latencies:
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latencies:
        ms = [s * 1000 for s in seconds]
        return cls(percentile(ms, 50), percentile(ms, 99), max(ms) if ms else None)


@dataclass
class CpuMeter:
    """CPU used over one phase, in % of one core: by the server process, by this generator,
    by the database server's processes (PostgreSQL runs), and by everything else on the
    machine -- someone else's job, which makes the run's numbers unreliable, so it is shown.
    """

    server_pid: int | None
    wall: float = 0.0
    server_s: float = 0.0
    generator_s: float = 0.0
    database_s: float = 0.0
    machine_s: float = 0.0

    database_command: ClassVar[str | None] = None
    """Processes with this name count as the database's (set to "postgres" for PostgreSQL)."""

    def __enter__(self) -> CpuMeter:
        self._t = time.perf_counter()
        self._g = time.process_time()
        self._s = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        self._d = command_cpu_seconds(self.database_command) if self.database_command else 0.0
        self._m = machine_busy_seconds()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self._t
        self.generator_s = time.process_time() - self._g
        if self.server_pid:
            self.server_s = cpu_seconds(self.server_pid) - self._s
        if self.database_command:
            self.database_s = max(0.0, command_cpu_seconds(self.database_command) - self._d)
        self.machine_s = machine_busy_seconds() - self._m

    def _pct(self, seconds: float) -> float | None:
        return 100 * seconds / self.wall if self.wall else None

    @property
    def server_pct(self) -> float | None:
        return self._pct(self.server_s) if self.server_pid else None

    @property
    def generator_pct(self) -> float | None:
        return self._pct(self.generator_s)

    @property
    def database_pct(self) -> float | None:
        return self._pct(self.database_s) if self.database_command else None

    @property
    def other_pct(self) -> float | None:
        if not self.machine_s:
            return None
        rest = self.machine_s - self.server_s - self.generator_s - self.database_s
        return self._pct(max(0.0, rest))


async def wait_quiet(server_pid: int | None, budget_s: float, max_other: float = 0.15) -> float:
    """Wait (at most ``budget_s``) until the rest of the machine has been idle for one
    second: CPU used by anything but the server and this generator under ``max_other`` of
    a core. Returns the seconds waited. On a shared machine this keeps other people's
    jobs out of the measurement, as far as they allow."""
    start = time.perf_counter()
    while True:
        with CpuMeter(server_pid) as meter:
            await asyncio.sleep(1.0)
        other = meter.other_pct
        waited = time.perf_counter() - start
        if other is None or other < 100 * max_other or waited >= budget_s:
            return waited


# -- setup --------------------------------------------------------------------------------


@dataclass
class World:
    """The users and conversations every phase uses."""

    members: list[Session]
    group: str
    hub: Session
    """members[0]: the other side of every direct conversation."""
    directs: dict[str, str]
    """user id of members[1:] -> their direct conversation with the hub."""


async def setup(target: Target, url: str, n_members: int) -> World:
    """Register ``n_members`` users, one ``n_members``-member group, and direct
    conversations between the first user and each of the others."""
    run = secrets.token_hex(3)
    names = [f"b{run}u{i:03d}" for i in range(n_members)]
    conns = [await connect(url) for _ in range(min(8, n_members))]
    try:
        members: list[Session] = [None] * n_members  # type: ignore[list-item]

        async def register(w: int) -> None:
            for i in range(w, n_members, len(conns)):
                members[i] = await target.register(conns[w], names[i], PASSWORD)

        await asyncio.gather(*(register(w) for w in range(len(conns))))
        hub = members[0]
        group = await target.create_group(conns[0], hub, members[1:])
        directs: dict[str, str] = {}
        for m in members[1:]:
            directs[m.user_id] = await target.create_direct(conns[0], hub, m)
        return World(members, group, hub, directs)
    finally:
        for c in conns:
            c.close()


# -- ciphertexts ---------------------------------------------------------------------------


def plaintext_for(ciphertext_bytes: int) -> bytes:
    """A plaintext whose Megolm message comes out closest to ``ciphertext_bytes`` bytes."""
    probe = vodozemac.GroupSession()
    best, best_gap = b"", math.inf
    for n in range(0, 4096, 8):
        text = _event_text(n)
        gap = abs(len(probe.encrypt(text).to_bytes()) - ciphertext_bytes)
        if gap < best_gap:
            best, best_gap = text, gap
    return best


def _event_text(n: int) -> bytes:
    head = b'{"type":"m.text","body":"'
    return head + os.urandom(n).hex().encode()[: max(0, n - len(head) - 2)] + b'"}'


@dataclass(frozen=True, slots=True)
class Send:
    sender: Session
    conversation_id: str
    txn_id: str
    ct: Ciphertext


def make_sends(
    target: Target,
    senders: Sequence[Session],
    conversation_of: Callable[[Session], str],
    count: int,
    plaintext: bytes,
    tag: str,
) -> list[Send]:
    """``count`` sends, round-robin over ``senders``, each encrypted now (not in a timed
    loop). ``tag`` must differ between calls: transaction ids are unique per device."""
    out = []
    for i in range(count):
        sender = senders[i % len(senders)]
        out.append(
            Send(sender, conversation_of(sender), f"{tag}.{i}", target.encrypt(sender, plaintext))
        )
    return out


def split(items: Sequence[T], workers: int) -> list[list[T]]:
    return [list(items[w::workers]) for w in range(workers)]


# -- closed loop ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    label: str
    concurrency: int
    requests: int
    ok: int
    errors: int
    seconds: float
    rate: float
    latency: Latencies
    server_cpu_pct: float | None
    generator_cpu_pct: float | None
    database_cpu_pct: float | None
    other_cpu_pct: float | None
    first_error: str | None = None
    attempts: int = 1


async def closed_loop(
    label: str,
    url: str,
    work: list[list[T]],
    op: Callable[[Connection, T], Awaitable[None]],
    server_pid: int | None,
    timeout_s: float,
) -> LoadResult:
    """One worker per list in ``work``, each on its own keep-alive connection, each with
    one request in flight: the rate is what the server sustains at that concurrency."""
    conns = [await connect(url) for _ in work]
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(w: int, items: list[T]) -> None:
        for item in items:
            t0 = time.perf_counter()
            try:
                await op(conns[w], item)
            except (HTTPError, OSError) as exc:
                errors.append(str(exc))
                if conns[w].closed:
                    conns[w] = await connect(url)
                continue
            latencies.append(time.perf_counter() - t0)

    meter = CpuMeter(server_pid)
    try:
        with meter:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*(worker(w, items) for w, items in enumerate(work)))
    except TimeoutError:
        errors.append(f"phase timed out after {timeout_s} s")
    finally:
        for c in conns:
            c.close()
    total = sum(len(w) for w in work)
    return LoadResult(
        label,
        len(work),
        total,
        len(latencies),
        total - len(latencies),
        meter.wall,
        len(latencies) / meter.wall if meter.wall else 0.0,
        Latencies.of(latencies),
        meter.server_pct,
        meter.generator_pct,
        meter.database_pct,
        meter.other_pct,
        errors[0] if errors else None,
    )


# -- sync ---------------------------------------------------------------------------------


class Inbox:
    """One device long-polling sync in the background, noting when each message arrives."""

    def __init__(self, target: Target, url: str, session: Session, timeout_ms: int) -> None:
        self.target, self.url, self.session, self.timeout_ms = target, url, session, timeout_ms
        self.arrivals: dict[str, float] = {}
        self.batches = 0
        self._pending: dict[str, asyncio.Future[float]] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: Connection | None = None
        self._error: BaseException | None = None

    async def start(self) -> None:
        self._conn = await connect(self.url)
        first = await self.target.sync(self._conn, self.session, None, 0)
        self._task = asyncio.create_task(self._run(first.cursor))

    async def _run(self, cursor: str, max_polls: int = 1_000_000) -> None:
        assert self._conn is not None
        try:
            for _ in range(max_polls):
                batch = await self.target.sync(self._conn, self.session, cursor, self.timeout_ms)
                cursor = batch.cursor
                self.batches += 1
                for m in batch.messages:
                    if m.key in self.arrivals:
                        continue
                    self.arrivals[m.key] = batch.received_at
                    fut = self._pending.pop(m.key, None)
                    if fut is not None and not fut.done():
                        fut.set_result(batch.received_at)
        except Exception as exc:
            self._error = exc
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(exc)
            raise

    async def arrival(self, key: str) -> float:
        """When the message with ``key`` arrived (waits for it)."""
        if key in self.arrivals:
            return self.arrivals[key]
        if self._error is not None:
            raise self._error
        fut = self._pending.get(key)
        if fut is None:
            fut = self._pending[key] = asyncio.get_running_loop().create_future()
        return await fut

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            self._conn.close()


@dataclass
class DeliveryResult:
    messages: int
    delivered: int
    delivery: Latencies
    send: Latencies
    sync_batches: int
    server_cpu_pct: float | None
    generator_cpu_pct: float | None
    database_cpu_pct: float | None
    other_cpu_pct: float | None
    error: str | None = None
    attempts: int = 1


async def delivery(
    target: Target,
    url: str,
    sends: list[Send],
    syncer: Session,
    sync_timeout_ms: int,
    per_message_timeout_s: float,
    server_pid: int | None,
    timeout_s: float,
) -> DeliveryResult:
    """Send one message at a time and wait until ``syncer``'s long-poll returns it; the
    latency runs from just before the send request to the moment the sync response ends."""
    inbox = Inbox(target, url, syncer, sync_timeout_ms)
    await inbox.start()
    conn = await connect(url)
    lat: list[float] = []
    send_lat: list[float] = []
    error = None
    meter = CpuMeter(server_pid)
    try:
        with meter:
            async with asyncio.timeout(timeout_s):
                for s in sends:
                    t0 = time.perf_counter()
                    await target.send(conn, s.sender, s.conversation_id, s.txn_id, s.ct)
                    send_lat.append(time.perf_counter() - t0)
                    async with asyncio.timeout(per_message_timeout_s):
                        lat.append(await inbox.arrival(s.ct.key) - t0)
    except (TimeoutError, HTTPError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
        await inbox.stop()
    return DeliveryResult(
        len(sends),
        len(lat),
        Latencies.of(lat),
        Latencies.of(send_lat),
        inbox.batches,
        meter.server_pct,
        meter.generator_pct,
        meter.database_pct,
        meter.other_pct,
        error,
    )


@dataclass
class FanInResult:
    senders: int
    messages: int
    received: int
    seconds: float
    received_rate: float
    send_rate: float
    delivery: Latencies
    sync_batches: int
    server_cpu_pct: float | None
    generator_cpu_pct: float | None
    database_cpu_pct: float | None
    other_cpu_pct: float | None
    error: str | None = None
    attempts: int = 1


async def fan_in(
    target: Target,
    url: str,
    per_sender: list[list[Send]],
    hub: Session,
    sync_timeout_ms: int,
    server_pid: int | None,
    timeout_s: float,
) -> FanInResult:
    """Every sender sends its messages one after another, all senders at once, each in its
    own direct conversation with ``hub``, who syncs. Rate = messages received per second
    from the first send to the last arrival."""
    inbox = Inbox(target, url, hub, sync_timeout_ms)
    await inbox.start()
    conns = [await connect(url) for _ in per_sender]
    started: dict[str, float] = {}
    errors: list[str] = []
    sent_at_end = 0.0

    async def sender(conn: Connection, sends: list[Send]) -> None:
        for s in sends:
            started[s.ct.key] = time.perf_counter()
            try:
                await target.send(conn, s.sender, s.conversation_id, s.txn_id, s.ct)
            except (HTTPError, OSError) as exc:
                del started[s.ct.key]
                errors.append(f"{type(exc).__name__}: {exc}")
                return

    meter = CpuMeter(server_pid)
    t_first = time.perf_counter()
    try:
        with meter:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(
                    *(sender(c, s) for c, s in zip(conns, per_sender, strict=True))
                )
                sent_at_end = time.perf_counter()
                for key in list(started):
                    await inbox.arrival(key)
    except (TimeoutError, HTTPError, OSError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for c in conns:
            c.close()
        await inbox.stop()
    lat = [inbox.arrivals[k] - t0 for k, t0 in started.items() if k in inbox.arrivals]
    last = max((inbox.arrivals[k] for k in started if k in inbox.arrivals), default=t_first)
    total = sum(len(s) for s in per_sender)
    elapsed = last - t_first
    return FanInResult(
        len(per_sender),
        total,
        len(lat),
        elapsed,
        len(lat) / elapsed if elapsed > 0 else 0.0,
        len(started) / (sent_at_end - t_first) if sent_at_end > t_first else 0.0,
        Latencies.of(lat),
        inbox.batches,
        meter.server_pct,
        meter.generator_pct,
        meter.database_pct,
        meter.other_pct,
        errors[0] if errors else None,
    )
