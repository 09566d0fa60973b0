"""Verifying a whole log: signature, every entry, consistency with what we saw before.

``Auditor.verify`` is the routine; ``audit_log`` wraps it with the state file. The
auditor trusts only the pinned log key and its own arithmetic: a root is believed when
the entries re-hash to it, a history is believed consistent when the right edge kept
from last time, extended by the new entries, hashes to the new signed root. The log's
own proofs are checked as well, so a log that stores the right data but serves broken
proofs to users is caught too.
"""

from __future__ import annotations

import contextlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from clearpost.audit.errors import (
    BadProof,
    EntryMismatch,
    Fork,
    MissingEntries,
    NotWitnessed,
    Rollback,
    ServerRefused,
)
from clearpost.audit.http import MAX_PAGE, TILE_CONNECTIONS, LogClient
from clearpost.audit.state import AuditState, LogPin, load_json, lock_state, save_json
from clearpost.audit.tileaudit import EntrySink, read_tree, verify_tree
from clearpost.audit.tree import PartialTree, locate_mismatch
from clearpost.audit.trust import log_verifier, open_log_checkpoint, resolve_pin
from clearpost.core.tlog import (
    Checkpoint,
    CompactRange,
    CosignatureVerifier,
    Note,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

if TYPE_CHECKING:
    from clearpost.audit.tilehelper import TileHelper

__all__ = ["AuditReport", "Auditor", "Progress", "audit_log"]

MAX_COSIGNED = 100
"""Largest ``?cosigned=N`` the log answers."""


class Progress(Protocol):
    """Where the auditor reports how many entries it has hashed."""

    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...


class _NoProgress:
    def start(self, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a successful audit established."""

    origin: str
    checkpoint: Checkpoint
    previous_size: int | None
    """Size of the checkpoint verified last time (None on a first audit)."""
    hashed_from: int
    """First entry re-hashed this run (0 for a full audit)."""
    proofs_checked: int
    witnesses: tuple[str, ...]
    """Names of the given witnesses whose cosignatures on this checkpoint verified."""
    trusted_on_first_use: bool
    seconds: float
    from_tiles: bool = False
    """True when the whole tree was read from tiles and every stored node checked."""
    nodes_checked: int = 0
    tiles_read: int = 0
    sampled: int = 0
    """Without tiles: how many random inclusion proofs were checked."""

    @property
    def hashed(self) -> int:
        return self.checkpoint.size - self.hashed_from


@dataclass(frozen=True, slots=True)
class Verified:
    """The outcome of ``Auditor.verify``: what to report and what to remember."""

    checkpoint: Checkpoint
    note: str
    edge: CompactRange
    """Right edge of the verified tree (the next run's starting point)."""
    hashed_from: int
    proofs_checked: int
    witnesses: tuple[str, ...]
    keep_previous: bool = False
    """True when the witnessed checkpoint is older than the one verified before (and
    consistent with it): the previous state stays the one to remember."""
    nodes_checked: int = 0
    tiles_read: int = 0
    from_tiles: bool = False


class Auditor:
    """Audits one log, given what was verified last time (``previous``)."""

    def __init__(
        self,
        client: LogClient,
        pin: LogPin,
        previous: AuditState | None = None,
        *,
        full: bool = False,
        samples: int = 8,
        witnesses: tuple[CosignatureVerifier, ...] = (),
        parallel: int = 4,
        progress: Progress | None = None,
        rng: random.Random | None = None,
        tiles: bool = True,
        entries: EntrySink | None = None,
        helper: TileHelper | None = None,
    ) -> None:
        self.client, self.pin, self.previous = client, pin, previous
        self.tiles = tiles
        self.entries = entries
        """Given the bodies of the entries read (from tiles: of bundles with its marker)."""
        self.helper = helper
        """Processes checking tiles alongside a tile audit (``tilehelper.py``)."""
        self.full, self.samples, self.witnesses, self.parallel = full, samples, witnesses, parallel
        self.progress = progress or _NoProgress()
        self.rng = rng or random.SystemRandom()

    async def verify(self) -> Verified:
        """Verify the log's latest checkpoint and everything up to it.

        1. Fetch the latest checkpoint and open it with the pinned key (``BadSignature``).
           With ``witnesses``: the latest checkpoint that carries a valid cosignature of
           every one of them (``NotWitnessed`` when the log serves none).
        2. Compare with the last verified checkpoint: a smaller size is a ``Rollback``, the
           same size with another root a ``Fork``.
        3. Fetch entries ``[start, size)`` and hash them onto the right edge at ``start``
           (``start`` is the last verified size, or 0 with ``full`` or no previous state).
           A log that does not serve them all raises ``MissingEntries``.
        4. If our root is not the signed root, ask for a consistency proof from the last
           checkpoint: when it verifies, history is intact and the entries are at fault
           (``EntryMismatch``, pinned down to one entry when possible); otherwise the log
           rewrote history (``Fork``).
        5. In a full audit, our root at the last verified size must be the last verified
           root (``Fork``).
        6. The log's consistency proof from the last checkpoint must verify (``BadProof``:
           the data already proved consistency, so only the proof is wrong).
        7. Inclusion proofs of the first and last new entries and of ``samples`` random
           ones must verify (``BadProof``).
        """
        prev = self.previous
        # 1.
        note, checkpoint, opened = await self._checkpoint()
        log_name = log_verifier(self.pin).name
        witnessed = tuple(s.name for s in opened.signatures if s.name != log_name)
        size = checkpoint.size
        # 2.
        if prev is not None and self.witnesses and size < prev.checkpoint.size:
            return await self._older_witnessed(prev, note, checkpoint, witnessed)
        if prev is not None:
            old = prev.checkpoint
            if size < old.size:
                raise Rollback(
                    f"the log now shows {size} entries, but it showed {old.size} entries, "
                    f"signed, before: it dropped {old.size - size} entries it had committed to",
                    evidence=(prev.note, note),
                )
            if size == old.size and checkpoint.root_hash != old.root_hash:
                raise Fork(_same_size_fork(size), evidence=(prev.note, note))
        if self.tiles:
            return await self._verify_tiles(prev, note, checkpoint, witnessed)
        # 3.
        base = prev.compact if prev is not None and not self.full else CompactRange()
        tree = PartialTree(base)
        old_size = prev.checkpoint.size if prev is not None else None
        old_root_seen = None
        if prev is not None and old_size == base.size:
            old_root_seen = prev.checkpoint.root_hash
        self.progress.start(size - base.size)
        pages = self.client.iter_entries(base.size, size, parallel=self.parallel)
        async for first, bodies in pages:
            expected = min(first + MAX_PAGE, size) - first
            if len(bodies) < expected:
                raise await self._missing(first, first + expected, size)
            if self.entries is not None:
                self.entries(first, bodies[:expected])
            if old_size is not None and first < old_size <= first + len(bodies):
                for body in bodies[: old_size - first]:
                    tree.append(leaf_hash(body))
                old_root_seen = tree.root()
                bodies = bodies[old_size - first :]
            for body in bodies:
                tree.append(leaf_hash(body))
            self.progress.advance(expected)
        # 4.
        edge = tree.compact()
        if edge.root() != checkpoint.root_hash:
            if prev is not None and not await self._consistent(prev.checkpoint, checkpoint):
                raise Fork(
                    f"the log's tree of {size} entries does not extend the tree of "
                    f"{prev.checkpoint.size} entries it signed before",
                    evidence=(prev.note, note),
                )
            raise await self._entry_mismatch(tree, checkpoint)
        # 5.
        if prev is not None and old_root_seen != prev.checkpoint.root_hash:
            raise Fork(
                f"the log's entries 0..{prev.checkpoint.size - 1} no longer hash to the root "
                "it signed for that size before: it rewrote its history",
                evidence=(prev.note, note),
            )
        proofs = 0
        # 6.
        if prev is not None and 0 < prev.checkpoint.size < size:
            proofs += 1
            if not await self._consistent(prev.checkpoint, checkpoint):
                raise BadProof(
                    f"the entries prove that size {size} extends size {prev.checkpoint.size}, "
                    "but the log's consistency proof between them does not verify"
                )
        # 7.
        for index in self._sample(tree.start, size):
            proofs += 1
            try:
                proof = await self.client.inclusion(index, size)
                verify_inclusion(tree.leaf(index), index, size, proof, checkpoint.root_hash)
            except (ProofError, ServerRefused) as exc:
                raise BadProof(
                    f"the log's inclusion proof for entry {index} in size {size} fails: {exc}"
                ) from exc
        return Verified(checkpoint, note, edge, base.size, proofs, witnessed)

    async def _verify_tiles(
        self,
        prev: AuditState | None,
        note: str,
        checkpoint: Checkpoint,
        witnessed: tuple[str, ...],
    ) -> Verified:
        """Steps 3-7 from tiles: every entry re-hashed, every stored node compared with
        the one the entries give (``tileaudit``), the root and the previous root checked."""
        size = checkpoint.size
        self.progress.start(size)
        old = prev.checkpoint.size if prev is not None else 0
        tree = await read_tree(
            self.client,
            size,
            keep_sizes=[old] if 0 < old <= size else [],
            parallel=TILE_CONNECTIONS,  # a bundle and its stored tile on each
            progress=self.progress.advance,
            entries=self.entries,
            helper=self.helper,
        )
        verify_tree(tree, checkpoint, note, (prev.checkpoint, prev.note) if prev else None)
        return Verified(
            checkpoint,
            note,
            tree.edge(),
            0,
            0,
            witnessed,
            nodes_checked=tree.nodes_checked,
            tiles_read=tree.tiles_read + tree.bundles_read,
            from_tiles=True,
        )

    async def _checkpoint(self) -> tuple[str, Checkpoint, Note]:
        """The checkpoint to audit: the latest, or with ``witnesses`` the latest that each
        of them cosigned.

        The log serves ``?cosigned=N``, the latest checkpoint with at least N
        cosignatures (of any of its witnesses). Starting from N = the number of required
        witnesses, each answer that lacks one of them raises N past its own count, so
        the walk ends after at most one request per witness the log keeps.
        """
        note = await self.client.checkpoint()
        checkpoint, opened = open_log_checkpoint(note, self.pin, self.witnesses)
        missing = self._uncosigned(opened)
        least = len(self.witnesses)
        while missing:
            try:
                if least > MAX_COSIGNED:
                    raise ServerRefused("too many", status=404, problem="checkpoint_not_found")
                note = await self.client.checkpoint(cosigned=least)
            except ServerRefused as exc:
                if exc.problem != "checkpoint_not_found":
                    raise
                names = ", ".join(w.name for w in self._uncosigned(opened) or self.witnesses)
                raise NotWitnessed(
                    f"the log serves no checkpoint cosigned by {names}: without that "
                    "witness's cosignature this audit cannot rule out that the log shows "
                    "other people another history (split view); the latest checkpoint, of "
                    f"size {checkpoint.size}, is not cosigned by it"
                ) from exc
            found, opened = open_log_checkpoint(note, self.pin, self.witnesses)
            missing = self._uncosigned(opened)
            least = max(least, len(opened.signatures) + len(opened.unverified)) + 1
            if not missing:
                checkpoint = found
        return note, checkpoint, opened

    def _uncosigned(self, opened: Note) -> list[CosignatureVerifier]:
        """The required witnesses whose valid cosignature ``opened`` does not carry."""
        have = {(s.name, s.key_id) for s in opened.signatures}
        return [w for w in self.witnesses if (w.name, w.key_id) not in have]

    async def _older_witnessed(
        self, prev: AuditState, note: str, checkpoint: Checkpoint, witnessed: tuple[str, ...]
    ) -> Verified:
        """The witnessed checkpoint is older than the one verified last time: it is good
        when the log proves the verified tree extends it (else the log forked)."""
        if not await self._consistent(checkpoint, prev.checkpoint):
            raise Fork(
                f"the checkpoint of size {checkpoint.size} that the witnesses cosigned is not "
                f"consistent with the tree of {prev.checkpoint.size} entries verified before",
                evidence=(prev.note, note),
            )
        return Verified(
            checkpoint, note, prev.compact, checkpoint.size, 1, witnessed, keep_previous=True
        )

    def _sample(self, start: int, size: int) -> list[int]:
        if start >= size:
            return []
        picks = {start, size - 1}
        span = size - start
        picks.update(start + self.rng.randrange(span) for _ in range(min(self.samples, span)))
        return sorted(picks)

    async def _consistent(self, old: Checkpoint, new: Checkpoint) -> bool:
        if old.size == new.size:
            return old.root_hash == new.root_hash
        if old.size == 0:
            return True
        try:
            proof = await self.client.consistency(old.size, new.size)
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
        except (ProofError, ServerRefused):
            return False
        return True

    async def _missing(self, lo: int, hi: int, size: int) -> MissingEntries:
        # Bisect with smaller pages until one index comes back empty.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if len(await self.client.entries(lo, mid)) < mid - lo:
                hi = mid
            else:
                lo = mid
        return MissingEntries(
            f"entry {lo} is missing: the log's signed checkpoint covers {size} entries, "
            "but the log does not serve that one",
            index=lo,
        )

    async def _entry_mismatch(self, tree: PartialTree, checkpoint: Checkpoint) -> EntryMismatch:
        size = checkpoint.size
        try:
            found = await locate_mismatch(tree, size, checkpoint.root_hash, self.client.inclusion)
        except ServerRefused:
            found = None
        if found is not None and found.index is not None:
            return EntryMismatch(
                f"entry {found.index} was changed: its bytes no longer hash to the leaf the "
                f"signed checkpoint of size {size} commits to",
                index=found.index,
            )
        where = ""
        if found is not None:
            span = f"{found.begin}..{found.end - 1}"
            where = f" (the log's own tree disagrees with itself over entries {span})"
        return EntryMismatch(
            f"the {size} entries do not hash to the signed root{where}: the log's stored tree "
            "or entries were altered"
        )


def _same_size_fork(size: int) -> str:
    return (
        f"the log signed two different trees of {size} entries: the one it shows now and "
        "the one it showed before"
    )


async def audit_log(
    client: LogClient,
    state_path: Path | None,
    *,
    origin: str | None = None,
    vkey: str | None = None,
    full: bool = False,
    samples: int = 8,
    witnesses: tuple[CosignatureVerifier, ...] = (),
    progress: Progress | None = None,
    tiles: bool = True,
    entries: EntrySink | None = None,
    helper: TileHelper | None = None,
) -> AuditReport:
    """Audit the log behind ``client``, remembering the result in ``state_path``.

    1. Lock and load the previous state, if any; decide which key to trust (``resolve_pin``).
    2. Run ``Auditor.verify``.
    3. On success only, save the new state atomically.
    """
    started = time.perf_counter()
    locked = lock_state(state_path) if state_path is not None else contextlib.nullcontext()
    with locked:
        # 1.
        previous = None
        if state_path is not None and (raw := load_json(state_path)) is not None:
            previous = AuditState.from_json(raw, state_path)
        pin, tofu = await resolve_pin(
            client, origin=origin, vkey=vkey, pinned=previous.log if previous else None
        )
        # 2.
        auditor = Auditor(
            client,
            pin,
            previous,
            full=full,
            samples=samples,
            witnesses=witnesses,
            progress=progress,
            tiles=tiles,
            entries=entries,
            helper=helper,
        )
        done = await auditor.verify()
        # 3.
        if state_path is not None and not done.keep_previous:
            state = AuditState(
                pin, done.note, done.checkpoint, done.edge, client.url, int(time.time())
            )
            save_json(state_path, state.to_json())
    return AuditReport(
        origin=pin.origin,
        checkpoint=done.checkpoint,
        previous_size=previous.checkpoint.size if previous else None,
        hashed_from=done.hashed_from,
        proofs_checked=done.proofs_checked,
        witnesses=done.witnesses,
        trusted_on_first_use=tofu,
        seconds=time.perf_counter() - started,
        from_tiles=done.from_tiles,
        nodes_checked=done.nodes_checked,
        tiles_read=done.tiles_read,
        sampled=0 if done.from_tiles else samples,
    )
