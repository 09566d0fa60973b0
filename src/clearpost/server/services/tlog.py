"""The transparency log as a service: append, sequence, sign, prove.

``append`` returns an entry's index once the entry is durable (log before release).
The sequencer integrates appended entries in batches and signs a checkpoint within a
second of an append. With several processes on PostgreSQL exactly one sequences: it holds
a session advisory lock on a dedicated connection, and when that process dies the lock
is released and another takes over on its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.clock import Clock
from clearpost.core.errors import Conflict, InvalidInput, NotFound
from clearpost.core.limits import MAX_SQL_INT
from clearpost.core.tlog import (
    Checkpoint,
    CompactRange,
    CosignatureVerifier,
    NodeId,
    NoteSignature,
    ProofNode,
    Signer,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    node_ids,
    resolve_proof,
    verify_cosignature,
)
from clearpost.core.tlog.entries import commitment, encode_entry
from clearpost.core.tlog.note import parse_note_unverified
from clearpost.server.services.batcher import Batcher
from clearpost.storage.db import Database
from clearpost.storage.sql import tlog as store_fns
from clearpost.storage.sql.tlog import LogStore, PendingEntry, StoredCheckpoint

log = logging.getLogger("clearpost.tlog")

MAX_BATCH = 50_000
PROOF_READ_BATCH = 64  # proofs whose stored nodes are read together (about 25 nodes each)
MAX_ENTRIES_PAGE = 1000
TICK_SECONDS = 0.5


_ProofRead = tuple[list[int], list[NodeId]]  # checkpoint sizes, stored nodes
_ProofMaterial = tuple[set[int], dict[NodeId, bytes]]  # the sizes published, the hashes


def _in_sql_range(**values: int) -> None:
    """Refuse a negative number or one too big for a 64-bit SQL integer before any query
    (the routes check the same; this keeps every other caller, and the fast path, safe)."""
    for name, value in values.items():
        if not 0 <= value <= MAX_SQL_INT:
            raise InvalidInput(
                f"{name}: a whole number from 0 to {MAX_SQL_INT}", code="invalid_parameter"
            )


@dataclass(frozen=True, slots=True)
class Proof:
    size: int
    hashes: list[bytes]


class LogService:
    def __init__(
        self,
        db: Database,
        store: LogStore,
        signer: Signer,
        witnesses: list[CosignatureVerifier],
        clock: Clock,
    ) -> None:
        self.db, self.store, self.signer, self.clock = db, store, signer, clock
        self.witnesses = {w.name: w for w in witnesses}
        self.origin = signer.name
        self._wake = asyncio.Event()
        self._integrated = asyncio.Condition()
        self._batcher: Batcher[PendingEntry, int] = Batcher(self._write, max_batch=10_000)
        self._proof_reads: Batcher[_ProofRead, _ProofMaterial] = Batcher(
            self._read_proof_material, max_batch=PROOF_READ_BATCH
        )

    # --- appending ---

    async def append(self, entry: dict[str, Any], subject: str | None = None) -> int:
        """Append one entry; returns its index once it is durable."""
        index = await self._batcher.submit(PendingEntry(encode_entry(entry), subject))
        self._wake.set()
        return index

    async def _write(self, batch: list[PendingEntry]) -> list[int]:
        return await self.store.append(batch, self.clock.now_ms())

    def appended(self) -> None:
        """Tell the sequencer that entries were appended inside another transaction."""
        self._wake.set()

    async def subject_of(self, user_id: str) -> tuple[str, bytes]:
        salt = await self.store.salt(user_id)
        return commitment(salt, user_id), salt

    async def wait_integrated(self, index: int, timeout: float = 5.0) -> StoredCheckpoint:
        """Wait until a checkpoint covers ``index`` (for callers that need the proof now)."""
        async with asyncio.timeout(timeout):
            while True:
                latest = await self.store.latest()
                if latest is not None and latest.size > index:
                    return latest
                self._wake.set()
                async with self._integrated:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._integrated.wait(), TICK_SECONDS)

    # --- sequencing ---

    async def run_sequencer(self) -> None:
        """Forever: when this process holds the sequencer role, integrate what is pending."""
        lock_conn: AsyncConnection | None = None
        try:
            while True:
                try:
                    if self.db.dialect.is_postgres and lock_conn is None:
                        conn = await self.db.engine.connect()
                        if await self.store.try_sequencer_lock(conn):
                            await conn.commit()
                            lock_conn = conn
                            log.info("this process is now the log sequencer")
                        else:
                            await conn.close()
                    if self.db.dialect.is_sqlite or lock_conn is not None:
                        await self.integrate_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sequencer step failed; retrying")
                    if lock_conn is not None:
                        with contextlib.suppress(Exception):
                            await lock_conn.close()
                        lock_conn = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)
                self._wake.clear()
        finally:
            if lock_conn is not None:
                with contextlib.suppress(Exception):
                    await lock_conn.close()

    async def integrate_once(self) -> int | None:
        """Integrate pending entries and sign a checkpoint; returns the new size, if any."""
        size = await self.db.run_write(self._integrate, self.clock.now_ms())
        async with self._integrated:
            self._integrated.notify_all()
        return size

    def _integrate(self, conn: Connection, now: int) -> int | None:
        """One integration step, inside one write transaction (on SQLite: the writer thread)."""
        latest = store_fns.latest_sync(conn)
        size = latest.size if latest else 0
        edges, leaves = store_fns.integration_input(conn, size, MAX_BATCH)
        if latest is not None and not leaves:
            return None
        tree = CompactRange.from_hashes(size, edges)
        nodes = tree.extend(leaves)
        checkpoint = Checkpoint(self.origin, tree.size, tree.root())
        note = checkpoint.sign([self.signer]).decode()
        store_fns.store_integration(conn, nodes, tree.size, tree.root(), note, now)
        return tree.size

    # --- reading and proving ---

    async def checkpoint(self, min_cosignatures: int = 0) -> str:
        """The latest checkpoint having ``min_cosignatures`` or more, with its cosignatures."""
        found = await self.store.latest_with_cosignatures(min_cosignatures)
        if found is None:
            raise NotFound(
                "no checkpoint has that many cosignatures yet", code="checkpoint_not_found"
            )
        cp, lines = found
        if not lines:
            return cp.note
        return cp.note + "".join(line + "\n" for line in lines)

    async def _size_ok(self, size: int) -> StoredCheckpoint:
        cp = await self.store.checkpoint(size)
        if cp is None:
            raise InvalidInput(
                f"no checkpoint of size {size}; use a size from a published checkpoint",
                code="invalid_tree_size",
            )
        return cp

    async def inclusion(self, index: int, size: int) -> Proof:
        _in_sql_range(index=index, size=size)
        if not 0 <= index < size:
            await self._size_ok(size)
            raise InvalidInput("index must be below the tree size", code="invalid_range")
        nodes = inclusion_proof_nodes(index, size)
        return await self._prove([size], nodes, size)

    async def consistency(self, first: int, second: int) -> Proof:
        _in_sql_range(**{"from": first, "to": second})
        if not 0 < first <= second:
            await self._size_ok(first)
            await self._size_ok(second)
            raise InvalidInput("need 0 < from <= to", code="invalid_range")
        return await self._prove([first, second], consistency_proof_nodes(first, second), second)

    async def _prove(self, sizes: list[int], nodes: list[ProofNode], size: int) -> Proof:
        """Resolve a proof's nodes, after checking every size is a published checkpoint."""
        known, stored = await self._proof_reads.submit((sizes, node_ids(nodes)))
        for s in sizes:
            if s not in known:
                raise InvalidInput(
                    f"no checkpoint of size {s}; use a size from a published checkpoint",
                    code="invalid_tree_size",
                )
        return Proof(size, resolve_proof(nodes, stored.__getitem__))

    async def _read_proof_material(self, batch: list[_ProofRead]) -> list[_ProofMaterial]:
        """The nodes and sizes of every proof asked for meanwhile, in one read transaction.

        A read per proof cost a thread hop per request, and the hop, not the reading, was
        most of a proof's time (2,060 proofs/s against 2,500 ``/health`` pings/s, each one
        hop). Proofs at one size share their upper nodes, so the union is also fewer rows.
        Every proof still reads what is stored now: nothing is cached between batches."""
        if len(batch) == 1:
            return [await self.store.proof_material(*batch[0])]
        sizes = [s for item_sizes, _ in batch for s in item_sizes]
        found = await self.store.proof_material(sizes, [n for _, ids in batch for n in ids])
        return [found] * len(batch)

    async def entries(self, start: int, end: int) -> list[bytes]:
        _in_sql_range(start=start, end=end)
        if not 0 <= start < end:
            raise InvalidInput("need 0 <= start < end", code="invalid_range")
        if end - start > MAX_ENTRIES_PAGE:
            raise InvalidInput(
                f"at most {MAX_ENTRIES_PAGE} entries per request", code="invalid_range"
            )
        latest = await self.store.latest()
        if latest is None or end > latest.size:
            raise InvalidInput("end is beyond the latest checkpoint", code="invalid_range")
        return await self.store.entries(start, end)

    async def add_cosignature(self, size: int, line: str) -> None:
        """Keep a cosignature from a configured witness after verifying it."""
        _in_sql_range(size=size)
        try:
            signature = NoteSignature.from_line(line)
        except InvalidInput as exc:
            raise InvalidInput(
                f"not a signature line: {exc.message}", code="invalid_cosignature"
            ) from exc
        witness = self.witnesses.get(signature.name)
        if witness is None:
            raise InvalidInput(
                "that key is not one of this log's witnesses", code="unknown_witness"
            )
        cp = await self._size_ok(size)
        text, _ = parse_note_unverified(cp.note)
        try:
            verify_cosignature(text, signature, witness, now=self.clock.now_ms() // 1000 + 300)
        except InvalidInput as exc:
            raise InvalidInput(
                "the cosignature does not verify for that checkpoint", code="invalid_cosignature"
            ) from exc
        line = signature.to_line().removesuffix("\n")
        if not await self.store.add_cosignature(size, witness.name, line, self.clock.now_ms()):
            raise Conflict("this witness already cosigned that checkpoint", code="already_cosigned")

    async def entries_about(
        self, user_id: str, limit: int = 1000
    ) -> tuple[bytes, StoredCheckpoint | None, list[tuple[int, bytes, list[bytes] | None]]]:
        """The caller's salt, the latest checkpoint, and each entry about them with its
        inclusion proof against that checkpoint (None while not yet integrated)."""
        subject, salt = await self.subject_of(user_id)
        latest = await self.store.latest()
        out: list[tuple[int, bytes, list[bytes] | None]] = []
        for index, body in await self.store.entries_about(subject, limit):
            proof = None
            if latest is not None and index < latest.size:
                proof = (await self.inclusion(index, latest.size)).hashes
            out.append((index, body, proof))
        return salt, latest, out
