"""The message-batch write alone: ``MessageStore.append`` of 32-message batches on SQLite.

Usage::

    .venv/bin/python bench/append_batch.py [--batches 300] [--size 32] [--repeats 5]

One process, a fresh SQLite database in a temporary directory, one group of 20 members;
each batch is what 32 concurrent sends become (``MessageService`` batches them) and goes
through the real path: one hop to the writer thread, the membership look-up, the stream
and sequence bumps, the bulk insert, the commit. Prints the CPU and wall time per batch,
best repeats first: the number to compare before and after a change to that path.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.messages import MessageStore, NewMessage

MEMBERS = 20
ENVELOPE = "x" * 460  # about the size of a 200-byte Megolm message's envelope


async def run(batches: int, size: int, repeats: int) -> list[tuple[float, float]]:
    with tempfile.TemporaryDirectory(prefix="cp-append-") as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}")
        try:
            await upgrade(db)
            async with db.write() as conn:
                await conn.execute(
                    text("INSERT INTO conversations VALUES ('g', 'group', 'u0', 0, 0, NULL)")
                )
                for i in range(MEMBERS):
                    await conn.execute(
                        text(
                            "INSERT INTO memberships (conversation_id, user_id, from_seq, "
                            "to_seq, joined_at) VALUES ('g', :u, 1, NULL, 0)"
                        ),
                        {"u": f"u{i}"},
                    )
            store, sent, results = MessageStore(db), 0, []
            for _ in range(repeats):
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(batches):
                    batch = [
                        NewMessage("g", f"u{k % MEMBERS}", "D", f"t{sent + k}", ENVELOPE, 0)
                        for k in range(size)
                    ]
                    sent += size
                    await store.append(batch)
                results.append(
                    (
                        (time.process_time() - cpu) / batches * 1e6,
                        (time.perf_counter() - wall) / batches * 1e6,
                    )
                )
            return sorted(results)
        finally:
            await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = asyncio.run(run(args.batches, args.size, args.repeats))
    print(f"{args.size}-message batches on SQLite, {args.batches} per repeat, best first:")
    for cpu, wall in results:
        print(f"  {cpu:7.1f} us CPU  {wall:7.1f} us wall  per batch")


if __name__ == "__main__":
    main()
