"""Key directory over HTTP: verified lookups per second, and what a device pays per day to
monitor its own account.

Run:  .venv/bin/python bench/keydir_http.py [--accounts 200] [--seconds 10] [--workers 8]
      [--postgres [URL]]

Starts one real ``clearpost serve`` (SQLite in a temporary data dir; with ``--postgres``, a
fresh database on that server, dropped afterwards), registers ``--accounts``
SDK clients (each publishes its device keys, committed in an epoch), then measures:

1. Lookups per second, each fully verified by the SDK (VRF proof, commitment, prefix-tree
   proof, the epoch entry's inclusion in a signed checkpoint, consistency with the last
   checkpoint, freshness) with ``--workers`` clients in parallel: whole lookups, and the
   repeat lookups ``Directory.devices`` makes once it has verified a user (``?since=``);
   next to the bare HTTP answers per second (whole lookups, no verification) and to
   ``GET /health`` as the server's ceiling on this machine.
2. Self-monitoring: one ``Directory.monitor`` check (the own label's history, verified),
   its CPU time on the device and the bytes it reads; the cost per day at the SDK's
   default (at a sync, at most once a minute: 1,440 checks) and at every 25 s long-poll.

Client and server share a 2-core machine with other work: read the numbers side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from launch import add_postgres_option, cpu_seconds, pg_create, pg_drop, start_clearpost

from clearpost.client import Client, KdfParams

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


async def register(http: httpx.AsyncClient, root: Path, n: int) -> list[Client]:
    out = []
    for i in range(n):
        out.append(
            await Client.register(
                http,
                f"kd{i}",
                "correct horse battery",
                store_path=root / f"kd{i}.store",
                passphrase="p",
                kdf=FAST,
                stream=False,
            )
        )
    return out


async def rate(fn, workers: int, seconds: float, pid: int) -> tuple[float, int, float]:  # type: ignore[no-untyped-def]
    """Requests a second, how many, and the server's CPU time per request (ms)."""
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await fn(w)
            done += 1

    started, cpu = time.perf_counter(), cpu_seconds(pid)
    await asyncio.gather(*(worker(w) for w in range(workers)))
    server_ms = 1000 * (cpu_seconds(pid) - cpu) / max(done, 1)
    return done / (time.perf_counter() - started), done, server_ms


async def main(args: argparse.Namespace) -> None:
    database = None
    if args.postgres:
        database = args.postgres.rsplit("/", 1)[0] + f"/keydir_{secrets.token_hex(4)}"
        await pg_create(database)
    try:
        server, _ = start_clearpost(database)
    except BaseException:
        if database:
            await pg_drop(database)
        raise
    print(f"store: {'PostgreSQL' if database else 'SQLite'}")
    try:
        root = Path(tempfile.mkdtemp(prefix="kd-bench-"))
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            t0 = time.perf_counter()
            clients = await register(http, root, args.accounts)
            print(
                f"registered {args.accounts} accounts in {time.perf_counter() - t0:.1f} s "
                "(each registration waits for its epoch)"
            )
            users = [c.user_id for c in clients]
            lookers = clients[: args.workers]

            async def verified(w: int) -> None:  # after each client's first: repeat lookups
                await lookers[w].crypto.directory.devices(random.choice(users))

            async def whole(w: int) -> None:  # as a device that never looked the user up
                directory = lookers[w].crypto.directory
                answer = await lookers[w].transport.request(
                    "GET", f"/v1/keydir/devices/{random.choice(users)}"
                )
                await directory.verify(answer, "lookup")

            async def bare(w: int) -> None:
                r = await http.get(
                    f"/v1/keydir/devices/{random.choice(users)}",
                    headers=lookers[w].transport.auth_headers(),
                )
                assert r.status_code == 200

            async def health(_w: int) -> None:
                assert (await http.get("/health")).status_code == 200

            answer = await http.get(
                f"/v1/keydir/devices/{users[0]}", headers=lookers[0].transport.auth_headers()
            )
            pid = server.pid
            v_rate, v_n, v_ms = await rate(verified, args.workers, args.seconds, pid)
            w_rate, _, w_ms = await rate(whole, args.workers, args.seconds, pid)
            b_rate, _, b_ms = await rate(bare, args.workers, args.seconds, pid)
            h_rate, _, h_ms = await rate(health, args.workers, args.seconds, pid)
            print()
            head = f"lookups over HTTP ({args.accounts} accounts, {args.workers} clients)"
            print(f"| {head} | per second | server CPU each |")
            print("|---|---|---|")
            what = "verified by the SDK (VRF, commitment, tree, log inclusion, checkpoint)"
            for name, per_s, ms in (
                (f"{what}, whole lookups", w_rate, w_ms),
                ("the same, repeat lookups (the SDK's own, after its first)", v_rate, v_ms),
                ("whole lookups answered, not verified", b_rate, b_ms),
                ("GET /health (ceiling)", h_rate, h_ms),
            ):
                print(f"| {name} | {per_s:,.0f} | {ms:.2f} ms |")
            print(f"lookup answer: {len(answer.content):,} bytes of JSON ({v_n} verified lookups)")

            me = clients[0].crypto.directory
            me.checks, me.bytes_read = 0, 0
            n = 50
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                await me.monitor()
            cpu = (time.process_time() - cpu0) / n
            wall = (time.perf_counter() - wall0) / n
            per = me.bytes_read / n
            print()
            print("| self-monitoring (one device) | per check | per day, 60 s | per day, 25 s |")
            print("|---|---|---|---|")
            for name, one, unit, scale in (
                ("client CPU (the bench process)", cpu, "s", 1.0),
                ("wall time (with the server)", wall, "s", 1.0),
                ("bytes read", per, "MB", 1e-6),
            ):
                first = f"{one * 1000:.1f} ms" if unit == "s" else f"{one:,.0f} B"
                day, poll = one * 1440 * scale, one * 3456 * scale
                print(f"| {name} | {first} | {day:.1f} {unit} | {poll:.1f} {unit} |")
            for c in clients:
                await c.close()
    finally:
        server.stop()
        if database:
            await pg_drop(database)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workers", type=int, default=8)
    add_postgres_option(p)
    asyncio.run(main(p.parse_args()))
