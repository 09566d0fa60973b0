"""Soak: does a syncing member's cost stay flat while history grows? (issue 22)

    .venv/bin/python bench/soak_sync.py --store sqlite --messages 1000000
    .venv/bin/python bench/soak_sync.py --store postgres --messages 1000000
    .venv/bin/python bench/soak_sync.py --store sqlite --messages 200000 --compare main

One ``clearpost serve`` (on a fresh SQLite file, or a fresh database on the PostgreSQL at
``--pg``), ``--senders`` users and one reader in one group. Senders send as fast as the
server takes it (``--concurrency`` requests in flight, one real Megolm ciphertext per sender,
sent again under new transaction ids: the server never decrypts, so this costs it the same)
while the reader syncs in a loop from its cursor, as a client does. Every ``--block``
messages the run prints one row:

- sync p50/p99: the reader's ``GET /v1/sync?timeout=0`` response time during the block,
  under the send load (each returns what arrived since the last one);
- probe p50/p99: with sending paused, ``--probes`` times: one message sent, then one sync
  (the cost of a sync that has one new message, without the load's noise);
- server CPU per message: the server process's user + system CPU in the block, divided by
  the messages sent; on PostgreSQL also the CPU of this database's backends;
- send rate, the reader's syncs in the block (they are part of the server's CPU: a slower
  block has more of them per message), and the server's RSS at the end of the block.

With ``--compare REV`` the same run is made first against commit REV's code (``git
archive``, as ``loadgen.py --commit`` does) and then against the checkout, one after the
other on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import orjson
from clearpost_target import ClearpostTarget
from http1 import Connection, HTTPError, connect
from launch import cpu_seconds, export_commit, memory, pg_create, pg_drop, start_clearpost
from phases import percentile, plaintext_for
from target import Session

PASSWORD = "soak-password-1"
PG_DEFAULT = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Block:
    sent: int = 0
    syncs: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    db_cpu: float | None = None
    seconds: float = 0.0
    rss_mib: float = 0.0


class Reader:
    """The syncing member: ``GET /v1/sync?timeout=0`` from its cursor, again and again."""

    def __init__(self, conn: Connection, session: Session) -> None:
        self.conn, self.session = conn, session
        self.cursor: str | None = None
        self.received = 0

    async def sync_once(self) -> float:
        query = "timeout=0" + (f"&since={self.cursor}" if self.cursor else "")
        start = time.perf_counter()
        r = await self.conn.request("GET", f"/v1/sync?{query}", headers=self.session.auth_header)
        took = time.perf_counter() - start
        if r.status != 200:
            raise HTTPError(f"sync -> {r.status}: {r.body[:200]!r}")
        body = orjson.loads(r.body)
        self.cursor = body["cursor"]
        self.received += len(body["messages"])
        return took

    async def loop(self, into: list[float], stop: asyncio.Event) -> None:
        while not stop.is_set():
            into.append(await self.sync_once())
            await asyncio.sleep(0.01)  # a client that syncs often, not a busy loop


def _db_backend_cpu(pids: list[int]) -> dict[int, float]:
    return {p: cpu_seconds(p) for p in pids}


async def _backend_pids(pg_admin: str, name: str) -> list[int]:
    conn = await asyncpg.connect(pg_admin)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)
        return [int(r[0]) for r in rows]
    finally:
        await conn.close()


async def soak(args: argparse.Namespace, source: Path | None, label: str) -> list[Block]:
    database, pg_name = None, None
    if args.store == "postgres":
        pg_name = f"soak_{secrets.token_hex(4)}"
        database = args.pg.rsplit("/", 1)[0] + "/" + pg_name
        await pg_create(database)
    pg_admin = args.pg.replace("postgresql+asyncpg://", "postgresql://")
    server, _ = start_clearpost(database, source=source)
    target = ClearpostTarget(one_time_keys=0)
    try:
        setup = await connect(server.url)
        run = secrets.token_hex(3)
        senders = [
            await target.register(setup, f"s{run}x{i}", PASSWORD) for i in range(args.senders)
        ]
        reader_session = await target.register(setup, f"s{run}reader", PASSWORD)
        group = await target.create_group(setup, senders[0], [*senders[1:], reader_session])
        setup.close()
        plaintext = plaintext_for(200)
        bodies = [target.encrypt(s, plaintext).body for s in senders]
        reader = Reader(await connect(server.url), reader_session)
        await reader.sync_once()
        blocks: list[Block] = []
        sent_total = 0
        print(f"\n{label}: {args.store}, {args.messages:,} messages in blocks of {args.block:,}")
        print(_HEADER)
        while sent_total < args.messages:
            block = Block()
            count = min(args.block, args.messages - sent_total)
            pids = await _backend_pids(pg_admin, pg_name) if pg_name else []
            cpu0, db0, t0 = cpu_seconds(server.pid), _db_backend_cpu(pids), time.perf_counter()
            stop = asyncio.Event()
            reading = asyncio.create_task(reader.loop(block.syncs, stop))
            # new connections each block: the server closes ones idle for 5 s (the probes)
            conns = [await connect(server.url) for _ in range(args.concurrency)]
            items = iter(range(sent_total, sent_total + count))
            sends = [_send_loop(c, items, senders, group, run, bodies, block) for c in conns]
            await asyncio.gather(*sends)
            stop.set()
            await reading
            block.seconds = time.perf_counter() - t0
            block.server_cpu = cpu_seconds(server.pid) - cpu0
            if pg_name:  # backends opened during the block count from zero
                db1 = _db_backend_cpu(await _backend_pids(pg_admin, pg_name))
                block.db_cpu = sum(cpu - db0.get(p, 0.0) for p, cpu in db1.items())
            for c in conns[1:]:
                c.close()
            for p in range(args.probes):
                n = f"{run}-probe-{sent_total}-{p}"
                await target_send(conns[0], senders[0], group, n, bodies[0])
                block.probes.append(await reader.sync_once())
            conns[0].close()
            block.rss_mib = (memory(server.pid).rss_kib or 0) / 1024
            sent_total += count
            blocks.append(block)
            print(_row(sent_total, block), flush=True)
        await reader.sync_once()
        expected = sent_total + args.probes * len(blocks)
        print(f"the reader received {reader.received:,} of {expected:,} messages sent")
        reader.conn.close()
        return blocks
    finally:
        server.stop()
        if database is not None:
            await pg_drop(database)


async def _send_loop(
    conn: Connection,
    items: Iterator[int],
    senders: list[Session],
    group: str,
    run: str,
    bodies: list[bytes],
    block: Block,
) -> None:
    """One connection's share of a block: take the next message number until none is left."""
    for n in items:
        k = n % len(senders)
        await target_send(conn, senders[k], group, f"{run}-{n}", bodies[k])
        block.sent += 1


async def target_send(conn: Connection, sender: Session, group: str, txn: str, body: bytes) -> None:
    r = await conn.request(
        "PUT",
        f"/v1/conversations/{group}/messages/{txn}",
        body,
        b"Content-Type: application/json\r\n" + sender.auth_header,
    )
    if r.status != 200:
        raise HTTPError(f"send -> {r.status}: {r.body[:200]!r}")


_HEADER = (
    f"{'messages':>10} {'sync p50':>9} {'sync p99':>9} {'probe p50':>10} {'probe p99':>10}"
    f" {'srv CPU/msg':>12} {'db CPU/msg':>11} {'msg/s':>7} {'syncs':>6} {'RSS MiB':>8}"
)


def _ms(values: list[float], p: float) -> str:
    v = percentile(values, p)
    return "-" if v is None else f"{v * 1000:.2f}"


def _row(total: int, b: Block) -> str:
    per = b.sent or 1
    db = "-" if b.db_cpu is None else f"{b.db_cpu / per * 1e6:.0f} us"
    return (
        f"{total:>10,} {_ms(b.syncs, 50):>9} {_ms(b.syncs, 99):>9} {_ms(b.probes, 50):>10}"
        f" {_ms(b.probes, 99):>10} {b.server_cpu / per * 1e6:>9.0f} us {db:>11}"
        f" {b.sent / b.seconds:>7.0f} {len(b.syncs):>6} {b.rss_mib:>8.1f}"
    )


def summary(label: str, blocks: list[Block]) -> None:
    if len(blocks) < 2:
        return
    first, last = blocks[0], blocks[-1]

    def change(a: float | None, b: float | None) -> str:
        return "-" if not a or b is None else f"{(b - a) / a * 100:+.0f}%"

    print(
        f"{label}: last block against the first: sync p50 "
        f"{change(percentile(first.syncs, 50), percentile(last.syncs, 50))}, probe p50 "
        f"{change(percentile(first.probes, 50), percentile(last.probes, 50))}, server CPU/msg "
        f"{change(first.server_cpu / first.sent, last.server_cpu / last.sent)}, RSS "
        f"{first.rss_mib:.0f} -> {last.rss_mib:.0f} MiB"
        f" (median of all blocks' sync p50: "
        f"{statistics.median(percentile(b.syncs, 50) or 0 for b in blocks) * 1000:.2f} ms)"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--block", type=int, default=100_000)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--probes", type=int, default=50)
    parser.add_argument("--pg", default=PG_DEFAULT, help="any database URL on the server to use")
    parser.add_argument(
        "--compare", metavar="REV", help="run commit REV's code first, the same way"
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    results = []
    if args.compare:
        source, short = export_commit(args.compare)
        results.append((f"commit {short}", await soak(args, source, f"commit {short}")))
    results.append(("this checkout", await soak(args, None, "this checkout")))
    print()
    for label, blocks in results:
        summary(label, blocks)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
