"""The transparency log as a service: append, sequence, sign, prove.

``append`` returns an entry's index once the entry is durable (log before release).
The sequencer integrates appended entries in batches and signs a checkpoint within a
second of an append. With several processes on PostgreSQL exactly one sequences, and it
proves so in every transaction that writes (``services/sequencer.py``): when it loses its
connection or its term it stops at once, and whoever takes the role next starts a new term.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from clearpost.core.clock import Clock
from clearpost.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    StoredDataDamaged,
    Unavailable,
)
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
from clearpost.core.tlog.entries import (
    NONCE_BYTES,
    Committed,
    commit,
    commitment,
    encode_entry,
)
from clearpost.core.tlog.note import parse_note_unverified
from clearpost.core.waiting import wait_event
from clearpost.server.services.batcher import Batcher
from clearpost.server.services.sequencer import SequencerRole
from clearpost.storage.db import Database
from clearpost.storage.sql import tlog as store_fns
from clearpost.storage.sql.sequencer import NotSequencer
from clearpost.storage.sql.tlog import EntryAbout, LogStore, PendingEntry, StoredCheckpoint

log = logging.getLogger("clearpost.tlog")

MAX_BATCH = 50_000
PROOF_READ_BATCH = 64  # proofs whose stored nodes are read together (about 25 nodes each)
MAX_ENTRIES_PAGE = 1000
MAX_ABOUT_PAGE = 1000  # entries about one person per page of GET /v1/me/log-entries
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
        self.role = SequencerRole(db, clock)
        self._wake = asyncio.Event()
        self._integrated = asyncio.Condition()
        self._batcher: Batcher[PendingEntry, int] = Batcher(self._write, max_batch=10_000)
        self.before_integrate: Callable[[Connection, int], object] | None = None
        """Run first in each integration step, under the fence (the key directory's epochs)."""
        self._proof_reads: Batcher[_ProofRead, _ProofMaterial] = Batcher(
            self._read_proof_material, max_batch=PROOF_READ_BATCH
        )

    # --- appending ---

    async def append(self, entry: dict[str, Any], about: Committed | None = None) -> int:
        """Append one entry (``about`` a person: made by ``commit``); returns its index once
        it is durable."""
        body = encode_entry(entry)
        pending = PendingEntry(body, None) if about is None else PendingEntry.about(body, about)
        index = await self._batcher.submit(pending)
        self._wake.set()
        return index

    async def _write(self, batch: list[PendingEntry]) -> list[int]:
        return await self.store.append(batch, self.clock.now_ms())

    def appended(self) -> None:
        """Tell the sequencer that entries were appended inside another transaction."""
        self._wake.set()

    async def commit(self, user_id: str, detail: dict[str, Any] | None = None) -> Committed:
        """A fresh subject commitment for one entry about ``user_id`` (never reused)."""
        salt = await self.store.salt(user_id)
        return commit(salt, user_id, secrets.token_bytes(NONCE_BYTES), detail)

    async def salt(self, user_id: str) -> bytes:
        return await self.store.salt(user_id)

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
                        async with asyncio.timeout(TICK_SECONDS):  # not wait_for: core/waiting.py
                            await self._integrated.wait()

    # --- sequencing ---

    async def run_sequencer(self) -> None:
        """Forever: integrate what is pending whenever this process holds (or can take) the
        sequencer role; on any failure the role is given up and sought again next tick."""
        damage = ""  # the last damage reported: said once, not as a traceback per tick
        failing = False  # a run of failed steps is logged at its first step and its end
        try:
            while True:
                try:
                    await self.integrate_once()
                    if failing:
                        failing = False
                        log.info("the sequencer is integrating again")
                except asyncio.CancelledError:
                    raise
                except StoredDataDamaged as exc:
                    if exc.message != damage:
                        damage = exc.message
                        log.error("the sequencer cannot go on: %s", damage)
                except Unavailable:
                    failing = True  # the storage layer logs a database outage once, and its end
                except (DBAPIError, OSError, NotSequencer) as exc:
                    if not failing:
                        log.warning("sequencer step failed, will retry: %s", _first_line(exc))
                    failing = True
                except Exception:
                    log.exception("sequencer step failed; retrying")
                await wait_event(self._wake, TICK_SECONDS)
                self._wake.clear()
        finally:
            await self.role.release()

    async def integrate_once(self) -> int | None:
        """Integrate pending entries and sign a checkpoint, as the sequencer; returns the new
        size, if any (None too when another process holds the role)."""
        _, size = await self.role.run(self._integrate)
        async with self._integrated:
            self._integrated.notify_all()
        return size

    def _integrate(self, conn: Connection, term: int) -> int | None:
        """One integration step, inside one write transaction that (on PostgreSQL) began
        with the fence (on SQLite: the writer thread). The checkpoint's time is read after
        the fence, so a term's checkpoints are all later than the previous term's."""
        if self.before_integrate is not None:
            self.before_integrate(conn, term)
        now = self.clock.now_ms()
        latest = store_fns.latest_sync(conn)
        size = latest.size if latest else 0
        edges, leaves = store_fns.integration_input(conn, size, MAX_BATCH)
        if latest is not None and not leaves:
            return None
        tree = CompactRange.from_hashes(size, edges)
        nodes = tree.extend(leaves)
        checkpoint = Checkpoint(self.origin, tree.size, tree.root())
        note = checkpoint.sign([self.signer]).decode()
        store_fns.store_integration(conn, nodes, tree.size, tree.root(), note, now, term)
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
        ids = node_ids(nodes)
        known, stored = await self._proof_reads.submit((sizes, ids))
        for s in sizes:
            if s not in known:
                raise InvalidInput(
                    f"no checkpoint of size {s}; use a size from a published checkpoint",
                    code="invalid_tree_size",
                )
        try:
            return Proof(size, resolve_proof(nodes, stored.__getitem__))
        except KeyError:  # every node under a published size was stored with it
            missing = next(n for n in ids if n not in stored)
            raise StoredDataDamaged(store_fns.missing_node(missing)) from None

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
        self, user_id: str, start: int = 0, limit: int = MAX_ABOUT_PAGE, size: int | None = None
    ) -> AboutPage:
        """One page of the entries about ``user_id`` from index ``start`` on, each with its
        opening and its inclusion proof against the checkpoint of ``size`` (default: the
        latest; None while an entry is not yet in it), and how many there are in all."""
        if not 1 <= limit <= MAX_ABOUT_PAGE:
            raise InvalidInput(f"limit is 1 to {MAX_ABOUT_PAGE}", code="invalid_range")
        salt = await self.store.salt(user_id)
        checkpoint = await self.store.latest() if size is None else await self._size_ok(size)
        key = commit_key(salt, user_id)
        total, found = await self.store.entries_about(key, start, limit + 1)
        more, found = len(found) > limit, found[:limit]
        out: list[tuple[EntryAbout, list[bytes] | None]] = []
        for e in found:
            proof = None
            if checkpoint is not None and e.index < checkpoint.size:
                proof = (await self.inclusion(e.index, checkpoint.size)).hashes
            out.append((e, proof))
        next_start = found[-1].index + 1 if found and more else None
        return AboutPage(salt, checkpoint, total, out, next_start)


@dataclass(frozen=True, slots=True)
class AboutPage:
    """A page of ``GET /v1/me/log-entries``."""

    salt: bytes
    checkpoint: StoredCheckpoint | None
    total: int
    entries: list[tuple[EntryAbout, list[bytes] | None]]
    next_start: int | None


def commit_key(salt: bytes, user_id: str) -> str:
    """The server's private index of a person's entries (the version-1 commitment)."""
    return commitment(salt, user_id)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
