"""``clearpost audit verify`` and ``clearpost witness`` against real server processes.

Each attack is played on the database directly (the operator is the adversary here):
an entry's bytes changed, a stored tree node changed, an entry deleted, a checkpoint
signature broken, the log rolled back and regrown, and one log shown as two histories
by two servers. Each must be caught with its own message and exit code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import shutil
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from click.testing import Result
from typer.testing import CliRunner

from clearpost.audit import ExitCode
from clearpost.cli.main import app
from clearpost.core.tlog import (
    Checkpoint,
    CosignatureVerifier,
    NodeId,
    Signer,
    Verifier,
    open_checkpoint,
    open_note,
)
from clearpost.core.tlog.tiles import TileId, locate, nodes_below, width_at
from tests.support import api
from tests.support.biglog import populate
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.timeout(90)


# --- helpers ---


async def cli(*args: str | Path) -> Result:
    """Run the ``clearpost`` CLI in-process (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(CliRunner().invoke, app, [str(a) for a in args])


def expect(result: Result, code: ExitCode, *phrases: str) -> None:
    assert result.exit_code == code, (
        f"want exit {int(code)}, got {result.exit_code}:\n{result.output}"
    )
    for phrase in phrases:
        assert phrase in result.output, f"{phrase!r} not in:\n{result.output}"


class Tamper:
    """Direct SQL on the server's database: SQLite file or PostgreSQL (``$n`` params)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self.transaction() as run:
            return await run(sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Callable[..., Awaitable[list[tuple[Any, ...]]]]]:
        """One transaction: the server sees all of its statements or none of them."""
        if self.url.startswith("sqlite"):
            path = self.url.split("///", 1)[1]
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db, db:
                db.execute("BEGIN IMMEDIATE")  # reads too: nothing written in between

                async def run_sqlite(sql: str, *args: Any) -> list[tuple[Any, ...]]:
                    return [tuple(r) for r in db.execute(sql.replace("$", "?"), args).fetchall()]

                yield run_sqlite
            return
        conn = await asyncpg.connect(self.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            async with conn.transaction():

                async def run_pg(sql: str, *args: Any) -> list[tuple[Any, ...]]:
                    return [tuple(r) for r in await conn.fetch(sql, *args)]

                yield run_pg
        finally:
            await conn.close()

    async def entry(self, idx: int) -> tuple[Any, ...]:
        (row,) = await self.run(
            "SELECT idx, body, leaf_hash, subject, created_at FROM tlog_entries WHERE idx = $1",
            idx,
        )
        return row

    async def set_body(self, idx: int, body: bytes) -> None:
        await self.run("UPDATE tlog_entries SET body = $1 WHERE idx = $2", body, idx)

    async def node(self, level: int, idx: int) -> bytes:
        tile, position = locate(NodeId(level, idx))
        hashes = await self.tile(tile)
        return hashes[32 * position : 32 * position + 32]

    async def set_node(self, level: int, idx: int, value: bytes) -> None:
        """Overwrite one node's 32 bytes inside its stored tile."""
        tile, position = locate(NodeId(level, idx))
        hashes = await self.tile(tile)
        changed = hashes[: 32 * position] + value + hashes[32 * position + 32 :]
        await self.run(
            "UPDATE tlog_tiles SET hashes = $1 WHERE level = $2 AND idx = $3",
            changed,
            tile.level,
            tile.index,
        )

    async def tile(self, tile: TileId) -> bytes:
        (row,) = await self.run(
            "SELECT hashes FROM tlog_tiles WHERE level = $1 AND idx = $2", tile.level, tile.index
        )
        return bytes(row[0])

    async def roll_back(self, size: int) -> None:
        """Forget everything after ``size`` entries, as if the log had never grown: in one
        transaction, so that the running server never sees half of it (a sequencer step
        between the checkpoints' deletion and the entries' would integrate the dropped
        entries again and sign the old size anew)."""
        async with self.transaction() as run:
            for level, idx in await run("SELECT level, idx FROM tlog_tiles"):
                tile = TileId(int(level), int(idx))
                keep = 32 * nodes_below(width_at(tile, size))
                if keep == 0:
                    await run(
                        "DELETE FROM tlog_tiles WHERE level = $1 AND idx = $2",
                        tile.level,
                        tile.index,
                    )
                    continue
                ((hashes,),) = await run(
                    "SELECT hashes FROM tlog_tiles WHERE level = $1 AND idx = $2",
                    tile.level,
                    tile.index,
                )
                await run(
                    "UPDATE tlog_tiles SET hashes = $1 WHERE level = $2 AND idx = $3",
                    bytes(hashes)[:keep],
                    tile.level,
                    tile.index,
                )
            await run("DELETE FROM tlog_cosignatures WHERE size > $1", size)
            await run("DELETE FROM tlog_checkpoints WHERE size > $1", size)
            await run("DELETE FROM tlog_entries WHERE idx >= $1", size)
            await run("UPDATE tlog_state SET next_index = $1", size)
            # and the key directory's epochs whose entries are gone, as a whole-database
            # rollback would (else the next epoch skips numbers, which the auditor refuses)
            gone = "SELECT epoch FROM keydir_epochs WHERE log_index >= $1"
            await run(f"DELETE FROM keydir_versions WHERE epoch IN ({gone})", size)
            await run(f"DELETE FROM keydir_leaves WHERE epoch IN ({gone})", size)
            await run("DELETE FROM keydir_epochs WHERE log_index >= $1", size)


async def grow(url: str, prefix: str, count: int) -> int:
    """Add ``count`` users with a device key each (each key upload returns once a key
    directory epoch, a log entry, holds it), and return the log's size."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in range(count):
            await api.user(client, f"{prefix}{i}", otks=0)
        size = int((await client.get("/v1/log/checkpoint")).text.splitlines()[1])
    await checkpoint_of(url, size)
    return size


async def checkpoint_of(url: str, size: int) -> Checkpoint:
    """Wait until the log's checkpoint is of ``size`` entries exactly; return it. A bigger one
    may be the checkpoint from before a rollback, still served until the server signs anew
    (slow on a loaded machine): wait for that too."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        key = (await client.get("/v1/log/key")).json()
        for _ in range(300):
            note = (await client.get("/v1/log/checkpoint")).text
            cp, _ = open_checkpoint(note, [Verifier.from_vkey(key["vkey"])], origin=key["origin"])
            if cp.size == size:
                return cp
            await asyncio.sleep(0.1)
    raise AssertionError(f"the log did not come to {size} entries (it shows {cp.size})")


async def keygen(tmp_path: Path, name: str) -> tuple[Path, str]:
    key = tmp_path / f"{name}.key"
    result = await cli("witness", "keygen", "--name", f"witness.example/{name}", "--out", key)
    expect(result, ExitCode.OK)
    vkey = result.stdout.strip().splitlines()[0]
    assert CosignatureVerifier.from_vkey(vkey).name == f"witness.example/{name}"
    assert key.stat().st_mode & 0o777 == 0o600
    return key, vkey


@pytest.fixture
def witnessed(tmp_path: Path, db_url: str) -> Iterator[tuple[ServerProcess, Path, str]]:
    """A server that accepts cosignatures from one witness, and that witness's key."""
    key, vkey = asyncio.run(keygen(tmp_path, "w1"))
    proc = start_server(tmp_path / "srv", db_url, {"CLEARPOST_LOG_WITNESSES": vkey})
    try:
        yield proc, key, vkey
    finally:
        proc.stop()


# --- a clean log ---


async def test_clean_log_verifies_and_later_audits_fetch_only_new_entries(
    server: ServerProcess, tmp_path: Path
) -> None:
    state = tmp_path / "audit.json"
    audit = ("audit", "verify", "--server", server.url, "--state", state)
    n1 = await grow(server.url, "alice", 4)

    first = await cli(*audit)
    expect(
        first,
        ExitCode.OK,
        f"{n1} entries verified",
        f"re-hashed {n1} entries from index 0",
        "checked every one of the",
        "trusted the log key on first use",
    )
    assert "SAMPLED" not in first.output
    pinned = orjson.loads(state.read_bytes())
    assert pinned["size"] == n1 and len(pinned["compact_range"]) == n1.bit_count()

    # From tiles, every run reads the whole tree; with --proofs, only what is new.
    n2 = await grow(server.url, "bob", 3)
    proofs = (*audit, "--proofs")
    expect(
        await cli(*proofs),
        ExitCode.OK,
        f"{n2} entries verified",
        f"re-hashed {n2 - n1} entries from index {n1}",
        f"consistent with the {n1} entries verified before",
        "SAMPLED ONLY",
    )
    expect(await cli(*proofs), ExitCode.OK, f"re-hashed 0 entries from index {n2}")
    expect(await cli(*proofs, "--full"), ExitCode.OK, f"re-hashed {n2} entries from index 0")
    expect(
        await cli(*audit),
        ExitCode.OK,
        f"re-hashed {n2} entries from index 0",
        f"consistent with the {n2} entries verified before",
    )

    # A key other than the log's is refused, whatever the log says.
    wrong = Signer.generate(pinned["origin"]).vkey
    expect(
        await cli("audit", "verify", "--server", server.url, "--vkey", wrong),
        ExitCode.BAD_SIGNATURE,
        "not signed by the log key",
    )
    expect(await cli(*audit, "--vkey", wrong), ExitCode.STATE, "does not match it")

    # A witness this log was not configured with cannot get its cosignature kept.
    key, _ = await keygen(tmp_path, "stranger")
    stranger = await cli("witness", "run", "--server", server.url, "--key", key, "--once")
    expect(stranger, ExitCode.REJECTED, "unknown_witness")


async def test_witness_cosignatures_are_accepted_and_served(
    witnessed: tuple[ServerProcess, Path, str], tmp_path: Path
) -> None:
    srv, key, vkey = witnessed
    wstate = tmp_path / "witness.json"
    witness = ("witness", "run", "--server", srv.url, "--key", key, "--state", wstate, "--once")
    n1 = await grow(srv.url, "alice", 4)

    expect(await cli(*witness), ExitCode.OK, "trusting log", f"cosigned size {n1} ")
    assert orjson.loads(wstate.read_bytes())["posted"] is True
    async with httpx.AsyncClient(base_url=srv.url) as client:
        log_key = Verifier.from_vkey((await client.get("/v1/log/key")).json()["vkey"])
        latest = (await client.get("/v1/log/checkpoint")).text
        with_cosig = (await client.get("/v1/log/checkpoint", params={"cosigned": 1})).text
    assert "\u2014 witness.example/w1 " in latest
    assert not latest.endswith("\n\n")  # a cosigned checkpoint is still one signed note
    w1 = CosignatureVerifier.from_vkey(vkey)
    for note in (latest, with_cosig):
        opened = open_note(note, [log_key, w1])  # every known signature must verify
        assert {s.name for s in opened.signatures} == {log_key.name, w1.name}
        assert Checkpoint.parse(opened.text).size == n1

    # The log grows; the witness follows with a consistency proof, once.
    n2 = await grow(srv.url, "bob", 3)
    expect(await cli(*witness), ExitCode.OK, f"cosigned size {n2} ", f"(consistent with {n1})")
    expect(await cli(*witness), ExitCode.OK, f"unchanged: size {n2} is already cosigned")
    audit = await cli("audit", "verify", "--server", srv.url, "--witness", vkey)
    expect(audit, ExitCode.OK, f"{n2} entries verified", "cosigned by witness.example/w1")


async def test_audit_with_a_witness_needs_a_checkpoint_that_witness_cosigned(
    witnessed: tuple[ServerProcess, Path, str], tmp_path: Path
) -> None:
    """Issue 14 item 12: ``--witness W`` used to pass on a checkpoint W never cosigned."""
    srv, key, vkey = witnessed
    n1 = await grow(srv.url, "nora", 3)
    audit = ("audit", "verify", "--server", srv.url, "--witness", vkey)
    # Nobody has cosigned anything yet: a split view cannot be ruled out.
    expect(
        await cli(*audit),
        ExitCode.NOT_WITNESSED,
        "no checkpoint cosigned by witness.example/w1",
        "split view",
    )
    wstate = tmp_path / "witness.json"
    witness = ("witness", "run", "--server", srv.url, "--key", key, "--state", wstate, "--once")
    expect(await cli(*witness), ExitCode.OK, f"cosigned size {n1} ")

    # The log grows past what the witness cosigned: the audit checks the cosigned one.
    n2 = await grow(srv.url, "olga", 2)
    expect(
        await cli(*audit), ExitCode.OK, f"{n1} entries verified", "cosigned by witness.example/w1"
    )
    # With a state that already verified the larger tree, the older witnessed checkpoint
    # must be consistent with it, and the state is kept.
    state = tmp_path / "audit.json"
    expect(await cli("audit", "verify", "--server", srv.url, "--state", state), ExitCode.OK)
    expect(await cli(*audit, "--state", state), ExitCode.OK, f"{n1} entries verified")
    assert orjson.loads(state.read_bytes())["size"] == n2

    # A witness the log never heard of has cosigned nothing.
    _, stranger = await keygen(tmp_path, "w9")
    expect(
        await cli("audit", "verify", "--server", srv.url, "--witness", stranger),
        ExitCode.NOT_WITNESSED,
        "witness.example/w9",
    )


# --- tampering with the stored log ---


async def test_tampering_with_entries_nodes_and_signatures_is_caught(
    server: ServerProcess, db_url: str, tmp_path: Path
) -> None:
    db = Tamper(db_url)
    n = await grow(server.url, "dave", 6)
    mine = n - 4  # one of the key-directory epochs holding dave's devices
    verify = ("audit", "verify", "--server", server.url, "--full")
    expect(await cli(*verify), ExitCode.OK)

    # An entry's bytes are changed: the auditor names the entry.
    body = bytes((await db.entry(mine))[1])
    await db.set_body(mine, body.replace(b'"time"', b'"TIME"'))
    expect(await cli(*verify), ExitCode.ENTRY_MISMATCH, f"entry {mine} was changed")
    await db.set_body(mine, body)

    # A stored node is changed: the data still matches, the proofs users get do not.
    node = await db.node(0, 1)
    await db.set_node(0, 1, hashlib.sha256(b"evil").digest())
    expect(await cli(*verify), ExitCode.BAD_PROOF, "stored tree node at level 0, index 1")
    expect(await cli(*verify, "--proofs"), ExitCode.BAD_PROOF, "inclusion proof for entry 0")
    await db.set_node(0, 1, node)

    # An entry is deleted: the auditor names the missing one.
    deleted = await db.entry(mine)
    await db.run("DELETE FROM tlog_entries WHERE idx = $1", mine)
    expect(await cli(*verify), ExitCode.MISSING_ENTRIES, f"entry {mine} is missing")
    await db.run(
        "INSERT INTO tlog_entries (idx, body, leaf_hash, subject, created_at) "
        "VALUES ($1, $2, $3, $4, $5)",
        *deleted,
    )
    expect(await cli(*verify), ExitCode.OK)

    # The checkpoint's root is rewritten: its signature no longer verifies.
    (note_row,) = await db.run("SELECT note FROM tlog_checkpoints WHERE size = $1", n)
    note = str(note_row[0])
    lines = note.split("\n")
    lines[2] = base64.b64encode(hashlib.sha256(b"other root").digest()).decode()
    await db.run("UPDATE tlog_checkpoints SET note = $1 WHERE size = $2", "\n".join(lines), n)
    expect(await cli(*verify), ExitCode.BAD_SIGNATURE, "invalid signature")
    await db.run("UPDATE tlog_checkpoints SET note = $1 WHERE size = $2", note, n)

    # The stored node of the tree's largest left subtree is changed before the log grows:
    # the log then signs a root that its own entries do not produce.
    state = tmp_path / "audit.json"
    expect(await cli(*verify, "--state", state), ExitCode.OK)
    left = n.bit_length() - 1  # that subtree covers entries 0 .. 2**left - 1
    await db.set_node(left, 0, hashlib.sha256(b"evil edge").digest())
    await grow(server.url, "erin", 1)
    expect(
        await cli(*verify),
        ExitCode.ENTRY_MISMATCH,
        f"disagrees with itself over entries 0..{2**left - 1}",
    )
    expect(
        await cli(*verify, "--state", state),
        ExitCode.FORK,
        f"does not extend the tree of {n} entries",
    )


@pytest.mark.slow
async def test_a_corrupted_stored_node_is_caught_on_every_fresh_audit(
    db_url: str, tmp_path: Path
) -> None:
    """Issue 14 item 13: a fresh audit sampled 8 proofs and caught a corrupted node in 3
    runs of 20; from tiles it checks every stored node, so it catches it every time."""
    data = tmp_path / "srv"
    await asyncio.to_thread(populate, data, db_url, 2_000)
    srv = start_server(data, db_url)
    try:
        db = Tamper(db_url)
        verify = ("audit", "verify", "--server", srv.url)
        expect(await cli(*verify), ExitCode.OK, "checked every one of the")
        rng = random.Random(14)
        for level, index in [(0, rng.randrange(1, 1_900)), (3, 77), (9, 1)]:
            node = await db.node(level, index)
            await db.set_node(level, index, hashlib.sha256(b"bit rot").digest())
            for _ in range(3):
                expect(
                    await cli(*verify),
                    ExitCode.BAD_PROOF,
                    f"stored tree node at level {level}, index {index} ",
                )
            await db.set_node(level, index, node)
        expect(await cli(*verify), ExitCode.OK)
    finally:
        srv.stop()


# --- rolling back, regrowing, and showing two histories ---


async def test_a_rolled_back_and_regrown_log_is_caught(
    witnessed: tuple[ServerProcess, Path, str], db_url: str, tmp_path: Path
) -> None:
    srv, key, _ = witnessed
    db = Tamper(db_url)
    state, wstate = tmp_path / "audit.json", tmp_path / "witness.json"
    audit = ("audit", "verify", "--server", srv.url, "--state", state)
    witness = ("witness", "run", "--server", srv.url, "--key", key, "--state", wstate, "--once")
    n1 = await grow(srv.url, "frank", 3)
    n2 = await grow(srv.url, "grace", 3)
    expect(await cli(*audit), ExitCode.OK)
    expect(await cli(*witness), ExitCode.OK, f"cosigned size {n2} ")

    # The operator drops the newest entries: both notice, neither accepts it.
    await db.roll_back(n1)
    await checkpoint_of(srv.url, n1)
    rolled = await cli(*audit)
    expect(rolled, ExitCode.ROLLBACK, f"dropped {n2 - n1} entries", "evidence")
    expect(await cli(*witness), ExitCode.ROLLBACK, "REFUSING to cosign")

    # ... and grows a different history past the old size.
    n3 = await grow(srv.url, "mallory", 4)
    assert n3 > n2
    expect(await cli(*audit), ExitCode.FORK, f"does not extend the tree of {n2} entries")
    expect(await cli(*witness), ExitCode.FORK, "REFUSING to cosign", "cannot prove")
    # A fresh auditor sees a self-consistent log: only memory catches a rewrite.
    expect(await cli("audit", "verify", "--server", srv.url), ExitCode.OK)


def _copy_sqlite(src: Path, dst: Path) -> None:
    with sqlite3.connect(src) as source, sqlite3.connect(dst) as target:
        source.backup(target)


async def test_two_servers_showing_two_histories_are_caught(tmp_path: Path) -> None:
    key, vkey = await keygen(tmp_path, "w2")
    env = {"CLEARPOST_LOG_WITNESSES": vkey}
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a = start_server(a_dir, f"sqlite+aiosqlite:///{a_dir / 'clearpost.db'}", env)
    b: ServerProcess | None = None
    try:
        n1 = await grow(a.url, "henry", 3)
        state, wstate = tmp_path / "audit.json", tmp_path / "witness.json"
        witness = ("witness", "run", "--key", key, "--state", wstate, "--once", "--server")
        expect(await cli(*witness, a.url), ExitCode.OK, f"cosigned size {n1} ")

        # The operator clones the log (database and key) behind a second server ...
        b_dir.mkdir()
        _copy_sqlite(a_dir / "clearpost.db", b_dir / "clearpost.db")
        shutil.copy(a_dir / "log.key", b_dir / "log.key")
        b = start_server(b_dir, f"sqlite+aiosqlite:///{b_dir / 'clearpost.db'}", env)
        # ... and lets the two grow apart, to the same size.
        n2 = await grow(a.url, "ivy", 2)
        assert await grow(b.url, "judy", 2) == n2
        cp_a, cp_b = await checkpoint_of(a.url, n2), await checkpoint_of(b.url, n2)
        assert cp_a.root_hash != cp_b.root_hash

        # An auditor and a witness that saw A's tree are shown B's, of the same size.
        expect(await cli("audit", "verify", "--state", state, "--server", a.url), ExitCode.OK)
        expect(await cli(*witness, a.url), ExitCode.OK, f"cosigned size {n2} ")
        forked = await cli(*witness, b.url)
        expect(forked, ExitCode.FORK, f"two different trees of {n2} entries", "evidence")
        assert forked.output.count(f"clearpost.localhost/log\n  {n2}\n") == 2  # both notes
        expect(
            await cli("audit", "verify", "--state", state, "--server", b.url),
            ExitCode.FORK,
            f"signed two different trees of {n2} entries",
        )
        # ... and once B grows on, B cannot prove it extends A.
        await grow(b.url, "kim", 1)
        expect(
            await cli("audit", "verify", "--state", state, "--server", b.url),
            ExitCode.FORK,
            f"does not extend the tree of {n2} entries",
        )
        expect(await cli(*witness, b.url), ExitCode.FORK, "cannot prove")
    finally:
        a.stop()
        if b is not None:
            b.stop()
