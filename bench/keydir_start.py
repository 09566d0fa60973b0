"""Key directory at start: how long ``clearpost serve`` takes to come up with a large
directory, and what the tree costs each server process in memory.

Run:  .venv/bin/python bench/keydir_start.py [--leaves 1000000] [--per-epoch 10000]
      [--changes 10000] [--postgres [URL]]

1. Starts a real ``clearpost serve`` on a fresh store (SQLite in a temporary data dir; with
   ``--postgres``, a fresh database on that server, dropped afterwards) and stops it once
   its first epoch is published: the empty directory's start time and memory.
2. Adds ``--leaves`` random leaves to the stored directory as more epochs of
   ``--per-epoch`` leaves (a 10,000-change epoch is the issue's measure; the server's limit
   is 20,000 accounts an epoch), each with the prefix tree's root over every leaf so far:
   what a directory of that many versions holds. The leaves belong to no label, so no
   proof is asked of them; the epochs' log entries and update proofs are not written (an
   auditor would refuse these epochs: the bench measures the server, not the log).
3. Adds ``--changes`` accounts (10,000, the issue's measure), each with one device and its
   signed keys, marked changed as a key upload marks them: the next epoch publishes them all.
4. Starts the server again on that store: the time until ``/health`` answers (the tree is
   rebuilt from the stored leaves before the server listens), the rebuild time the server
   logs, and its resident memory; the time its first step takes to publish the epoch of
   ``--changes`` new versions over the large tree (VRF proofs, commitments, the tree, the
   auditors' update proof, the rows and the log entry, in the sequencer's transaction; the
   server's log says it); then registers one account (its device keys are published in a
   new epoch) and verifies its lookup with the SDK.

What an operator reads from it: the start-up delay and the memory per server process for
a directory of that size (docs/operations.md, "The key directory").
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import Launched, add_postgres_option, memory, pg_create, pg_drop, start_clearpost

from clearpost.client import Client, KdfParams
from clearpost.core.keydir.tree import PrefixTree

REBUILT = re.compile(r"key directory tree rebuilt: (\d+) leaves, epoch (\d+), ([\d.]+) s")
PUBLISHED = re.compile(r"key directory epoch (\d+): (\d+) new versions in ([\d.]+) s")


def serve(data_dir: Path, database: str | None) -> tuple[Launched, float]:
    """``clearpost serve`` on ``data_dir``; returns it and the seconds until /health."""
    started = time.perf_counter()
    server, _ = start_clearpost(
        database, data_dir=data_dir, env={"CLEARPOST_LOG_LEVEL": "info"}, ready_within=600
    )  # the tree's rebuild is logged at info
    return server, time.perf_counter() - started


def wait_for_epoch(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if httpx.get(f"{url}/v1/keydir/epochs/0", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise RuntimeError("no key-directory epoch within 30 s")


async def register_and_look_up(url: str, root: Path) -> tuple[float, int]:
    """Seconds to register one account (its keys wait for their epoch), and the size of
    its verified lookup's JSON."""
    async with httpx.AsyncClient(base_url=url, timeout=120) as http:
        t0 = time.perf_counter()
        client = await Client.register(
            http,
            "carol",
            "correct horse battery",
            store_path=root / "carol.store",
            passphrase="p",
            kdf=KdfParams(time_cost=1, memory_kib=8192, parallelism=1),
            stream=False,
        )
        took = time.perf_counter() - t0
        try:
            await client.crypto.directory.lookup(client.user_id)  # verified, or raises
            answer = await http.get(
                f"/v1/keydir/devices/{client.user_id}", headers=client.transport.auth_headers()
            )
            return took, len(answer.content)
        finally:
            await client.close()


def random_leaves(n: int) -> list[tuple[bytes, bytes]]:
    return [(secrets.token_bytes(32), secrets.token_bytes(32)) for _ in range(n)]


def epochs(
    stored: list[tuple[bytes, bytes]], leaves: list[tuple[bytes, bytes]], per_epoch: int
) -> Iterator[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    """(offset from the last stored epoch, its leaves, the root after them) for each new
    epoch."""
    tree = PrefixTree.from_leaves(stored)
    for n, start in enumerate(range(0, len(leaves), per_epoch), start=1):
        batch = leaves[start : start + per_epoch]
        yield n, batch, tree.insert_many(batch)


def device_keys(user_id: str) -> str:
    """One device's signed keys as a client uploads them (random keys and signature: the
    server stores them as they are; only their size matters here)."""
    device = "BENCH" + secrets.token_hex(4).upper()
    return json.dumps(
        {
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "device_id": device,
            "keys": {
                f"curve25519:{device}": base64.b64encode(secrets.token_bytes(32)).decode(),
                f"ed25519:{device}": base64.b64encode(secrets.token_bytes(32)).decode(),
            },
            "signatures": {
                user_id: {f"ed25519:{device}": base64.b64encode(secrets.token_bytes(64)).decode()}
            },
            "user_id": user_id,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def changed_accounts(n: int) -> Iterator[tuple[tuple[object, ...], tuple[object, ...]]]:
    """(users row, devices row) of ``n`` accounts with one device each."""
    now = int(time.time() * 1000)
    for i in range(n):
        user_id = f"@bench{i}:clearpost.localhost"
        keys = device_keys(user_id)
        device = json.loads(keys)["device_id"]
        yield (
            (user_id, "unused", now),
            (user_id, device, secrets.token_hex(32), now, keys),
        )


USERS_COLUMNS = ("user_id", "password_hash", "created_at")
DEVICES_COLUMNS = ("user_id", "device_id", "token_hash", "created_at", "device_keys")


def add_changes_sqlite(path: Path, n: int) -> None:
    rows = list(changed_accounts(n))
    now = int(time.time() * 1000)
    db = sqlite3.connect(path)
    try:
        db.executemany(
            "INSERT INTO users (user_id, password_hash, created_at) VALUES (?, ?, ?)",
            [u for u, _ in rows],
        )
        db.executemany(
            "INSERT INTO devices (user_id, device_id, token_hash, created_at, device_keys) "
            "VALUES (?, ?, ?, ?, ?)",
            [d for _, d in rows],
        )
        db.executemany(
            "INSERT INTO keydir_dirty (user_id, since) VALUES (?, ?)",
            [(u[0], now) for u, _ in rows],
        )
        db.commit()
    finally:
        db.close()


async def add_changes_pg(url: str, n: int) -> None:
    rows = list(changed_accounts(n))
    now = int(time.time() * 1000)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "users", records=[u for u, _ in rows], columns=USERS_COLUMNS
            )
            await conn.copy_records_to_table(
                "devices", records=[d for _, d in rows], columns=DEVICES_COLUMNS
            )
            await conn.copy_records_to_table(
                "keydir_dirty", records=[(u[0], now) for u, _ in rows], columns=["user_id", "since"]
            )
    finally:
        await conn.close()


def wait_for_log(server: Launched, pattern: re.Pattern[str], within: float) -> re.Match[str]:
    assert server.log_path is not None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = pattern.search(server.log_path.read_text())
        if found:
            return found
        time.sleep(0.2)
    raise RuntimeError(f"the server's log did not say {pattern.pattern!r} within {within:.0f} s")


def add_epochs_sqlite(path: Path, leaves: list[tuple[bytes, bytes]], per_epoch: int) -> None:
    db = sqlite3.connect(path)
    try:
        stored = db.execute("SELECT idx, commitment FROM keydir_leaves").fetchall()
        epoch, log_index, through = db.execute(
            "SELECT epoch, log_index, through FROM keydir_epochs ORDER BY epoch DESC LIMIT 1"
        ).fetchone()
        for n, batch, root in epochs([(bytes(i), bytes(c)) for i, c in stored], leaves, per_epoch):
            db.executemany(
                "INSERT INTO keydir_leaves (idx, commitment, epoch) VALUES (?, ?, ?)",
                [(i, c, epoch + n) for i, c in batch],
            )
            db.execute(
                "INSERT INTO keydir_epochs (epoch, root, log_index, through, created_at, proof) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (epoch + n, root, log_index, through, int(time.time() * 1000), b""),
            )
        db.commit()
    finally:
        db.close()


async def add_epochs_pg(url: str, leaves: list[tuple[bytes, bytes]], per_epoch: int) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        stored = await conn.fetch("SELECT idx, commitment FROM keydir_leaves")
        last = await conn.fetchrow(
            "SELECT epoch, log_index, through FROM keydir_epochs ORDER BY epoch DESC LIMIT 1"
        )
        async with conn.transaction():
            for n, batch, root in epochs(
                [(bytes(r[0]), bytes(r[1])) for r in stored], leaves, per_epoch
            ):
                await conn.copy_records_to_table(
                    "keydir_leaves",
                    records=[(i, c, last["epoch"] + n) for i, c in batch],
                    columns=["idx", "commitment", "epoch"],
                )
                await conn.execute(
                    "INSERT INTO keydir_epochs (epoch, root, log_index, through, created_at, "
                    "proof) VALUES ($1, $2, $3, $4, $5, $6)",
                    last["epoch"] + n,
                    root,
                    last["log_index"],
                    last["through"],
                    int(time.time() * 1000),
                    b"",
                )
    finally:
        await conn.close()


def main(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="keydir-start-"))
    database = None
    if args.postgres:
        database = args.postgres.rsplit("/", 1)[0] + f"/keydir_start_{secrets.token_hex(4)}"
        asyncio.run(pg_create(database))
    store = "PostgreSQL" if database else "SQLite"
    try:
        server, empty_s = serve(data_dir, database)
        try:
            wait_for_epoch(server.url)
            empty_rss = memory(server.pid).rss_kib / 1024
        finally:
            server.stop()
        t0 = time.perf_counter()
        leaves = random_leaves(args.leaves)
        if database:
            asyncio.run(add_epochs_pg(database, leaves, args.per_epoch))
        else:
            add_epochs_sqlite(data_dir / "clearpost.db", leaves, args.per_epoch)
        del leaves
        print(
            f"{store}: {args.leaves:,} leaves stored in epochs of {args.per_epoch:,} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        if args.changes:
            if database:
                asyncio.run(add_changes_pg(database, args.changes))
            else:
                add_changes_sqlite(data_dir / "clearpost.db", args.changes)
        server, full_s = serve(data_dir, database)
        try:
            full_rss = memory(server.pid).rss_kib / 1024
            assert server.log_path is not None
            rebuilt = [m.groups() for m in REBUILT.finditer(server.log_path.read_text())]
            published = wait_for_log(server, PUBLISHED, 600).groups() if args.changes else None
            register_s, lookup_bytes = asyncio.run(register_and_look_up(server.url, data_dir))
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        if database:
            asyncio.run(pg_drop(database))
    print()
    head = f"{args.leaves:,} leaves ({args.per_epoch:,} an epoch)"
    print(f"| key directory at start ({store}) | empty | {head} |")
    print("|---|---|---|")
    print(f"| `clearpost serve` until `/health` answers | {empty_s:.1f} s | {full_s:.1f} s |")
    if rebuilt:
        n, _, secs = rebuilt[-1]
        print(f"| tree rebuilt from the store (server's log) | | {int(n):,} leaves, {secs} s |")
    print(f"| resident memory after start | {empty_rss:,.0f} MiB | {full_rss:,.0f} MiB |")
    if published:
        _, versions, secs = published
        print(f"| first epoch: {int(versions):,} changes published (server's log) | | {secs} s |")
    per = (full_rss - empty_rss) * 1024 * 1024 / max(args.leaves, 1)
    print(f"| memory per leaf | | {per:,.0f} B |")
    print(
        f"then: one registration in {register_s:.1f} s (its epoch published over the large "
        f"tree), its lookup verified by the SDK ({lookup_bytes:,} B of JSON)"
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--leaves", type=int, default=1_000_000)
    p.add_argument("--per-epoch", type=int, default=10_000)
    p.add_argument("--changes", type=int, default=10_000, help="accounts changed for one epoch")
    add_postgres_option(p)
    main(p.parse_args())
