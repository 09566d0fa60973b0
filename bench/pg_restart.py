"""PostgreSQL stops under a send load: what clients see, before and after the fix (issue 22).

Usage::

    .venv/bin/python bench/pg_restart.py [--before REF] [--down 5] [--mode fast]
                                         [--senders 4] [--probes 4]

For each variant — the server code at git ``REF`` (default: the commit before the fix),
then this tree — it starts a private PostgreSQL (``tests/support/pg.py``; never the
shared server) and a ``clearpost serve`` on it, then:

1. ``--senders`` SDK clients (this tree's SDK in both variants) each send messages one
   after another to their own direct conversation, and ``--probes`` plain HTTP workers
   loop over ``GET /v1/sync`` (the fast path) and ``GET /v1/conversations`` (FastAPI),
   counting each status;
2. after 3 s PostgreSQL is stopped (``--mode``) for ``--down`` seconds, then started;
3. 5 s later the load stops; sends still waiting may finish (at most 70 s).

It prints, per variant: the probes' 200 / 503 / 500 / other counts, SDK sends that
succeeded and that failed (an app would have to retry those itself), messages stored
(read back from each conversation; more than succeeded would be duplicates), how long
after the restart readiness (``/health/ready``, or ``/health`` on the old code) said 200
again, and how many bytes the server logged while the database was down. The SDK is
this tree's in both rows; against the old server that changes nothing (a 500 is not
retried).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/support/pg.py: the private PostgreSQL

from clearpost.client import Client, ClientError, KdfParams  # noqa: E402
from tests.support.pg import PrivatePostgres  # noqa: E402
from tests.support.server import FAST_ENV, free_port  # noqa: E402

BEFORE = "05513e5"  # the last commit before database outages became 503s
FAST_KDF = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
WARM, AFTER, DRAIN = 3.0, 5.0, 70.0


@dataclass
class Result:
    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    sent_ok: int = 0
    sent_failed: int = 0
    stored: int = 0
    ready_after: float | None = None
    log_bytes_down: int = 0
    log_lines_down: int = 0
    log_request_errors: int = 0  # "unhandled error" records (one traceback per request)
    log_sequencer_errors: int = 0  # the log sequencer's own retry records


def start_server(src: Path, database: str, data: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log_path = data / "server.log"
    data.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **FAST_ENV, "PYTHONPATH": str(src / "src")}
    cmd = [sys.executable, "-m", "clearpost", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data), "--database", database]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log_path.read_text())
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url, log_path
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


async def sender(client: Client, conv: str, stop: asyncio.Event, res: Result) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await client.send(conv, f"message {n}")
            res.sent_ok += 1
        except ClientError:
            res.sent_failed += 1
            await asyncio.sleep(0.2)


async def prober(http: httpx.AsyncClient, token: str, stop: asyncio.Event, res: Result) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    while not stop.is_set():
        for path in ("/v1/sync", "/v1/conversations"):
            try:
                r = await http.get(path, headers=auth)
                res.statuses[r.status_code] += 1
            except httpx.HTTPError:
                res.statuses[0] += 1
        await asyncio.sleep(0.02)


async def run_variant(name: str, src: Path, args: argparse.Namespace, work: Path) -> Result:
    res = Result(name)
    pg = PrivatePostgres.create()
    proc = None
    try:
        pg.create_database("clearpost")
        proc, url, log_path = start_server(src, pg.url("clearpost"), work / name)
        async with httpx.AsyncClient(base_url=url, timeout=90) as http:
            users = []
            for i in range(args.senders + 1):
                users.append(
                    await Client.register(
                        http,
                        f"user{i}",
                        "correct horse battery",
                        store_path=work / name / f"user{i}.store",
                        passphrase="p",
                        kdf=FAST_KDF,
                        stream=False,
                    )
                )
            receiver, senders = users[0], users[1:]
            convs = [await s.direct(receiver.user_id) for s in senders]
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(sender(s, c, stop, res))
                for s, c in zip(senders, convs, strict=True)
            ]
            token = str(receiver.transport.token)
            tasks += [
                asyncio.create_task(prober(http, token, stop, res)) for _ in range(args.probes)
            ]
            await asyncio.sleep(WARM)
            offset = log_path.stat().st_size
            await asyncio.to_thread(pg.stop, args.mode)
            await asyncio.sleep(args.down)
            down = log_path.read_bytes()[offset:]
            res.log_bytes_down, res.log_lines_down = len(down), down.count(b"\n")
            res.log_request_errors = down.count(b"unhandled error")
            res.log_sequencer_errors = down.count(b"sequencer step failed")
            await asyncio.to_thread(pg.start)
            started = time.monotonic()
            res.ready_after = await wait_ready(http, started)
            await asyncio.sleep(AFTER)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), DRAIN)
            for conv in convs:
                res.stored += await count_messages(receiver, conv)
            for user in users:
                await user.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        pg.destroy()
    return res


async def wait_ready(http: httpx.AsyncClient, started: float) -> float | None:
    while time.monotonic() - started < 30:
        for path in ("/health/ready", "/health"):
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(path)
                if r.status_code == 200 and (path == "/health" or r.json().get("database")):
                    return time.monotonic() - started
                if r.status_code != 404:
                    break
        await asyncio.sleep(0.05)
    return None


async def count_messages(client: Client, conv: str) -> int:
    total, after = 0, 0
    while True:
        page = await client.transport.messages(conv, after, 500)
        total += len(page["messages"])
        if page.get("next_after") is None or not page["messages"]:
            return total
        after = int(page["next_after"])


def checkout(ref: str, work: Path) -> Path:
    path = work / "before-src"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), ref], check=True
    )
    return path


def _other(statuses: Counter[int]) -> str:
    """Statuses other than 200/503/500, e.g. ``401: 3, error: 2`` (error: no response)."""
    other = sorted((k, v) for k, v in statuses.items() if k not in (200, 503, 500))
    return ", ".join(f"{k or 'error'}: {v:,}" for k, v in other) or "0"


def print_table(results: list[Result], args: argparse.Namespace) -> None:
    print(f"\nPostgreSQL stopped ({args.mode}) for {args.down:.0f} s under {args.senders} SDK")
    print(f"senders and {args.probes} HTTP probes; the same SDK in both rows\n")
    head = (
        "| server | probes 200 | 503 | 500 | other | SDK sends ok | SDK sends failed "
        "| stored | duplicates | ready again after | log while down "
        "| request tracebacks | sequencer tracebacks |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        ready = f"{r.ready_after:.1f} s" if r.ready_after is not None else "never (30 s)"
        print(
            f"| {r.name} | {r.statuses[200]:,} | {r.statuses[503]:,} | {r.statuses[500]:,} "
            f"| {_other(r.statuses)} | {r.sent_ok:,} | {r.sent_failed:,} | {r.stored:,} "
            f"| {max(0, r.stored - r.sent_ok):,} | {ready} "
            f"| {r.log_bytes_down:,} B, {r.log_lines_down:,} lines "
            f"| {r.log_request_errors:,} | {r.log_sequencer_errors:,} |"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE, help="git ref of the old server code")
    parser.add_argument("--down", type=float, default=5.0, help="seconds PostgreSQL is down")
    parser.add_argument("--mode", choices=["fast", "immediate", "smart"], default="fast")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--probes", type=int, default=4)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="clearpost-pg-restart-"))
    os.chmod(work, 0o755)
    before = checkout(args.before, work)
    try:
        results = [
            await run_variant(f"before ({args.before})", before, args, work),
            await run_variant("after (this tree)", ROOT, args, work),
        ]
    finally:
        remove = ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)]
        await asyncio.to_thread(subprocess.run, remove, check=False)
        await asyncio.to_thread(shutil.rmtree, work, True)
    print_table(results, args)


if __name__ == "__main__":
    asyncio.run(main())
