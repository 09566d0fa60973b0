"""The key directory (issue 17): publishing epochs and proving labels.

Publishing runs inside the log sequencer's step (``LogService.before_integrate``), in its
fenced write transaction: with several server processes on one database only the role
holder publishes, and an epoch's leaves, its ``keydir`` log entry and the checkpoint that
covers it commit together, or not at all. An epoch is published when an account's devices
changed (``keydir_dirty``), when log entries about someone were integrated since they were
last counted and ``keydir_log_seconds`` have passed since then (their ``log:`` labels, up to
``MAX_ACCOUNTS_PER_EPOCH`` people an epoch with those whose devices changed, and a quarter of
that at least), and at least every ``keydir_heartbeat_seconds``
without. Counting entries at most every ``keydir_log_seconds`` bounds the versions a busy
account adds (a partner allowed 60 reads of a person a minute added one an epoch, up to one a
step: 86,400 a day, each kept in every process's memory) and the epochs in the log.

Every process keeps the prefix tree in memory. It is rebuilt from the stored leaves at
start and brought up to the stored latest epoch before each publication and each proof;
a tree whose root is not the stored epoch's root (a transaction that did not commit, or a
damaged database) is rebuilt, and a rebuilt tree that still disagrees is stored damage.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from clearpost.core.clock import Clock
from clearpost.core.errors import InvalidInput, NotFound, StoredDataDamaged, Unavailable
from clearpost.core.keydir import commit as commit_mod
from clearpost.core.keydir import tree as tree_mod
from clearpost.core.keydir.proofs import (
    ABSENT,
    Bundle,
    Present,
    history_absent,
    history_shown,
    index_of,
    lookup_shown,
)
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash
from clearpost.core.keydir_labels import (
    DEVICES,
    EMPTY_CHAIN,
    LOG,
    devices_value,
    label,
    log_chain,
    log_value,
    parse_log_value,
)
from clearpost.core.tlog.entries import encode_entry, keydir_entry
from clearpost.server.services.tlog import LogService
from clearpost.storage.db import Database
from clearpost.storage.schema import server_secrets
from clearpost.storage.sql import keydir as ks
from clearpost.storage.sql import tlog as tlog_store
from clearpost.storage.sql.keydir import Epoch, KeyDirStore, Version

log = logging.getLogger("clearpost.keydir")

BundleFor = Callable[[Epoch, list[Version]], Bundle]
"""Makes a bundle at an epoch from the label's versions stored by it."""

VRF_SECRET = "keydir_vrf"
MAX_ACCOUNTS_PER_EPOCH = 20_000
"""Accounts whose devices changed that one epoch takes. A count of the entries about people
takes the rest, and at least a quarter as many besides: a flood of device changes must not
hold a count back past ``keydir_log_seconds``, since clients and auditors refuse a count
older than that and a minute."""
VRF_CACHE = 100_000


class KeyDirBusy(Unavailable):
    """The directory is starting or publishing this instant; the same request will do."""

    code = "keydir_busy"

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=1.0)


class _Moved(Exception):
    """The tree moved to another epoch while an answer was being made."""


@dataclass(frozen=True, slots=True)
class Anchored:
    """A bundle with what ties its epoch's root to the signed log."""

    bundle: Bundle
    epoch: Epoch
    entry: bytes
    checkpoint: str
    size: int
    inclusion: list[bytes]


@dataclass(frozen=True, slots=True)
class CountShown:
    """An epoch's log entry, included in the checkpoint of an answer about a ``log:`` label:
    one of the epochs that show when that answer's ``through`` was set."""

    epoch: int
    log_index: int
    entry: bytes
    inclusion: list[bytes]


class KeyDirService:
    def __init__(
        self,
        db: Database,
        store: KeyDirStore,
        log_service: LogService,
        clock: Clock,
        heartbeat_seconds: int,
        log_seconds: int,
    ) -> None:
        self.db, self.store, self.log, self.clock = db, store, log_service, clock
        self.heartbeat_ms = heartbeat_seconds * 1000
        self.log_every_ms = log_seconds * 1000
        self._counted: tuple[int, int] | None = None
        """(through, when): the last time this process's epoch counted log entries, and up
        to where."""
        self._behind = False
        """The last count stopped at ``MAX_ACCOUNTS_PER_EPOCH`` people: the next step goes on."""
        self._vrf: VrfSecretKey | None = None
        self._tree: Any = None
        self._tree_epoch = -1
        self._lock = threading.Lock()  # the tree: used by the writer thread and by proofs
        self.last_publish_seconds = 0.0
        self._entry: tuple[tuple[int, int, bytes], bytes] | None = None
        """The latest epoch's log entry, under (its index, its time, its root)."""
        self._inclusion: tuple[tuple[int, int, bytes], list[bytes]] | None = None
        """That entry's inclusion proof, under (its index, the checkpoint's size and root):
        kept by what it proves, so a restored database's equal numbers do not reuse it."""
        self._absent_proofs: dict[bytes, tuple[bytes, bytes]] = {}
        """VRF proofs of versions not yet published, with their indexes (deterministic:
        kept, bounded)."""

    # --- start ---

    async def start(self) -> None:
        """Load the VRF key and rebuild the tree from the stored leaves."""
        try:
            await self.db.run_write(self._vrf_key)
        except IntegrityError:  # another process made it at the same moment: read theirs
            self._vrf = None
            await self.db.run_write(self._vrf_key)
        latest = await self.store.latest_epoch()
        await self.db.run_read(self._sync_tree, latest)

    @property
    def vrf_public_key(self) -> bytes:
        if self._vrf is None:
            raise KeyDirBusy("the key directory is starting")
        return self._vrf.public_key

    def leaves_in_memory(self) -> int:
        """How many versions this process's tree holds (each costs it about 150 bytes)."""
        tree = self._tree
        return len(tree) if tree is not None else 0

    def _vrf_key(self, conn: Connection) -> VrfSecretKey:
        """The directory's VRF key, made once and shared by every server process."""
        if self._vrf is None:
            seed = conn.execute(
                select(server_secrets.c.value).where(server_secrets.c.name == VRF_SECRET)
            ).scalar_one_or_none()
            if seed is None:
                seed = secrets.token_bytes(32)
                conn.execute(insert(server_secrets).values(name=VRF_SECRET, value=seed))
            self._vrf = VrfSecretKey.from_seed(bytes(seed))
        return self._vrf

    # --- the tree ---

    def _sync_tree(self, conn: Connection, latest: Epoch | None) -> None:
        """Bring the in-memory tree to the stored ``latest`` epoch (caller holds no lock)."""
        with self._lock:
            self._sync_tree_locked(conn, latest)

    def _sync_tree_locked(self, conn: Connection, latest: Epoch | None) -> None:
        want = latest.epoch if latest else -1
        if self._tree is not None and self._tree_epoch < want:
            leaves = [(i, c) for i, c, _ in ks.leaves_sync(conn, self._tree_epoch, want)]
            try:
                self._tree.insert_many(leaves)
                self._tree_epoch = want
            except InvalidInput as exc:  # never from an intact store: said, then rebuilt
                log.warning(
                    "key directory tree at epoch %d cannot take the leaves up to epoch %d "
                    "(%s): rebuilding it from every stored leaf",
                    self._tree_epoch,
                    want,
                    exc.message,
                )
                self._tree = None
        if self._tree is not None and (self._tree_epoch != want or not _same_root(self, latest)):
            self._tree = None  # ahead of what committed, or damaged: rebuild
        if self._tree is None:
            started = time.perf_counter()
            stored = ((i, c) for i, c, _ in ks.leaves_sync(conn, -1, want))  # streamed
            self._tree = tree_mod.PrefixTree.from_leaves(stored)
            self._tree_epoch = want
            if latest is not None and self._tree.root() != latest.root:
                self._tree = None
                raise StoredDataDamaged(
                    f"the key directory's stored leaves do not give epoch {latest.epoch}'s root"
                )
            log.info(
                "key directory tree rebuilt: %d leaves, epoch %d, %.2f s",
                len(self._tree),
                want,
                time.perf_counter() - started,
            )

    # --- publishing (in the sequencer's transaction) ---

    def publish_in(self, conn: Connection, term: int) -> int | None:
        """Publish an epoch if one is due; returns its number. Runs under the fence."""
        del term
        now = self.clock.now_ms()
        latest = ks.latest_epoch_sync(conn)
        checkpoint = tlog_store.latest_sync(conn)
        size = checkpoint.size if checkpoint else 0
        through = latest.through if latest else 0
        dirty = ks.dirty_users_sync(conn, MAX_ACCOUNTS_PER_EPOCH)
        about: list[tuple[int, str]] = []
        if self._count_due(conn, latest, now):
            about, through = _first_people(
                ks.entries_about_sync(conn, through, size),
                max(MAX_ACCOUNTS_PER_EPOCH - len(dirty), MAX_ACCOUNTS_PER_EPOCH // 4),
                size,
            )
        due = latest is None or now - latest.created_at >= self.heartbeat_ms
        if not dirty and not about and not due:
            return None
        started = time.perf_counter()
        vrf_key = self._vrf_key(conn)
        with self._lock:
            self._sync_tree_locked(conn, latest)
            new = self._new_versions(conn, dirty, about)
            epoch = self._tree_epoch + 1
            leaves: list[tuple[Version, bytes]] = []
            for lbl, version, value in new:
                pi, index = self._vrf_of(lbl, version, keep=False)
                opening = commit_mod.new_opening()
                row = Version(lbl.decode(), version, epoch, index, pi, opening, value)
                leaves.append((row, commit_mod.commit(opening, lbl, version, value)))
            inserted = [(v.index, c) for v, c in leaves]
            proof = tree_mod.prove_update(self._tree, [i for i, _ in inserted])
            at = _epoch_time(now, latest)
            try:
                root = self._tree.insert_many(inserted) if inserted else self._tree.root()
                self._tree_epoch = epoch
                entry = keydir_entry(
                    epoch,
                    root,
                    through,
                    at,
                    self.log_every_ms // 1000,
                    self.heartbeat_ms // 1000,
                    vrf_key.public_key,
                )
                body = encode_entry(entry)
                (log_index,) = tlog_store.append_sync(
                    conn, [tlog_store.PendingEntry(body, None)], now
                )
                stored = Epoch(epoch, root, log_index, through, at)
                ks.store_epoch_sync(conn, stored, _bytes(proof), leaves, dirty)
            except BaseException:
                self._tree = None  # rebuilt from what is stored, next time
                raise
        if latest is None or through != latest.through:
            self._counted = (through, at)
            self._behind = through < size
        self.last_publish_seconds = time.perf_counter() - started
        if new:
            log.info(
                "key directory epoch %d: %d new versions in %.2f s",
                epoch,
                len(new),
                self.last_publish_seconds,
            )
        return epoch

    def _count_due(self, conn: Connection, latest: Epoch | None, now: int) -> bool:
        """Whether this step counts the log entries about people since the last count: at
        once when the last count stopped short, else ``keydir_log_seconds`` after it (read
        from the epochs when another process made it)."""
        if latest is None or self._behind or self.log_every_ms == 0:
            return True
        if self._counted is None or self._counted[0] != latest.through:
            at = ks.counted_at_sync(conn, latest.through)
            self._counted = (latest.through, latest.created_at if at is None else at)
        return now - self._counted[1] >= self.log_every_ms

    def _new_versions(
        self, conn: Connection, dirty: list[str], about: list[tuple[int, str]]
    ) -> list[tuple[bytes, int, bytes]]:
        """(label, version, value) of every label whose value changed (tree lock held)."""
        by_user: dict[str, list[int]] = defaultdict(list)
        for index, user in about:
            by_user[user].append(index)
        labels = [label(DEVICES, u).decode() for u in dirty]
        labels += [label(LOG, u).decode() for u in by_user]
        prev = ks.latest_versions_sync(conn, labels)
        uploaded = ks.device_keys_sync(conn, dirty)
        out: list[tuple[bytes, int, bytes]] = []
        for user in dirty:
            lbl = label(DEVICES, user)
            keys = [orjson.loads(k) for k in uploaded[user]]
            value = devices_value(keys)
            before = prev.get(lbl.decode())
            if before is None and not keys:
                continue  # never had a device: still absent
            if before is not None and before.value == value:
                continue
            out.append((lbl, before.version + 1 if before else self._first_free(lbl), value))
        for user, indexes in by_user.items():
            lbl = label(LOG, user)
            before = prev.get(lbl.decode())
            count, chain = parse_log_value(before.value) if before else (0, EMPTY_CHAIN)
            n, chain = log_chain(indexes, chain)
            version = before.version + 1 if before else self._first_free(lbl)
            out.append((lbl, version, log_value(count + n, chain)))
        return out

    async def wait_published(self, user_id: str, timeout: float = 10.0) -> None:
        """Wait until an epoch committed ``user_id``'s device change (so anyone who looks
        the device up finds it in the directory)."""
        try:
            async with asyncio.timeout(timeout):
                while await self.store.is_dirty(user_id):
                    self.log.appended()
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise KeyDirBusy(
                "the keys are stored, but the key directory has not published them yet; "
                "contacts find the device after the next epoch"
            ) from None

    # --- proving ---

    async def _anchored(self, lbl: bytes, bundle_for: BundleFor) -> Anchored:
        """A bundle about ``lbl`` at the latest epoch, anchored in the log. The epoch, the
        checkpoint that covers it and the label's versions are read together, anew each
        time (an erased account's versions are gone at once); the epoch's entry and its
        inclusion proof are kept until the next epoch or checkpoint."""
        for _ in range(100):
            latest, checkpoint, versions = await self.store.anchor(lbl.decode())
            if latest is None:
                raise NotFound("the key directory has no epoch yet", code="keydir_empty")
            if self._tree_epoch > latest.epoch and self._tree is not None:
                pass  # an epoch being committed now: read again (never rebuild backwards)
            elif checkpoint is not None and checkpoint.size > latest.log_index:
                if self._tree_epoch != latest.epoch or not _same_root(self, latest):
                    await self.db.run_read(self._sync_tree, latest)
                if self._tree_epoch == latest.epoch:
                    try:
                        bundle = bundle_for(latest, versions)
                        break
                    except _Moved:  # the next epoch came in between: prove at that one
                        pass
            await asyncio.sleep(0.02)
        else:
            raise KeyDirBusy("the key directory is publishing; try again")
        epoch_at = (latest.log_index, latest.created_at, latest.root)
        if self._entry is None or self._entry[0] != epoch_at:
            body = (await self.log.store.entries(latest.log_index, latest.log_index + 1))[0]
            self._entry = (epoch_at, body)
        entry = self._entry[1]
        at = (latest.log_index, checkpoint.size, checkpoint.root)
        if self._inclusion is None or self._inclusion[0] != at:
            proof = await self.log.inclusion(latest.log_index, checkpoint.size)
            self._inclusion = (at, proof.hashes)
        inclusion = self._inclusion[1]
        return Anchored(bundle, latest, entry, checkpoint.note, checkpoint.size, inclusion)

    async def lookup(self, kind: str, user_id: str, since: int | None = None) -> Anchored:
        """The greatest version of ``<kind>:<user_id>`` (or its absence), proven; ``since``:
        a repeat lookup for someone who verified that version before (``lookup_since``),
        answered as a full lookup when the label has no such version."""
        lbl = label(kind, user_id)

        def bundle_for(epoch: Epoch, stored: list[Version]) -> Bundle:
            versions = self._erased_before(lbl, stored, epoch)
            if not versions:
                return self._prove(lbl, [], list(ABSENT), epoch, opened=set())
            if _erased(versions[-1]):
                raise NotFound("that account was deleted", code="user_not_found")
            n = versions[-1].version
            present, absent = lookup_shown(n, since)  # the keytrans draft's binary ladder
            show = [v for v in versions if v.version in set(present)]
            return self._prove(lbl, show, absent, epoch, opened={n})

        return await self._anchored(lbl, bundle_for)

    async def history(self, kind: str, user_id: str, since: int | None = None) -> Anchored:
        """The versions ``history_shown(n, since)`` of the label (all of them: ``since =
        None``; those after the one a device verified before: ``since``), opened, and the
        absent versions of the greatest one's ladder (``prove_history``)."""
        lbl = label(kind, user_id)

        def bundle_for(epoch: Epoch, stored: list[Version]) -> Bundle:
            versions = self._erased_before(lbl, stored, epoch)
            n = len(versions) - 1
            shown = [versions[v] for v in history_shown(n, since)]
            live = {v.version for v in shown if not _erased(v)}
            return self._prove(lbl, shown, history_absent(n), epoch, opened=live)

        return await self._anchored(lbl, bundle_for)

    async def log_label(self, user_id: str) -> tuple[Anchored, list[CountShown]]:
        """The greatest version of the person's ``log:`` label, proven, with the epochs that
        show when its epoch's ``through`` was set: the first epoch with that ``through`` and
        the one before it (those that are not the answer's own epoch). A client checks that
        the count is no older than ``keydir_log_seconds`` allow: otherwise a server could
        stop counting and leave any newer entry out of a history that checks as complete."""
        found = await self.lookup(LOG, user_id)
        before, first = await self.store.count_epochs(found.epoch.through, found.epoch.epoch)
        shown: list[CountShown] = []
        for e in (before, first):
            if e is None or e.epoch == found.epoch.epoch:
                continue
            body = (await self.log.store.entries(e.log_index, e.log_index + 1))[0]
            proof = await self.log.inclusion(e.log_index, found.size)
            shown.append(CountShown(e.epoch, e.log_index, body, proof.hashes))
        return found, shown

    def _vrf_of(self, lbl: bytes, version: int, *, keep: bool = True) -> tuple[bytes, bytes]:
        """The VRF proof of (label, version) and its index: deterministic, so kept (bounded)
        while the version is absent. ``keep=False`` for a version being published: it takes
        the one kept (``_first_free`` proves a new label's first version, a lookup's ladder
        the next ones), and the proof is stored with the version's row from then on."""
        vrf_key = self._vrf
        if vrf_key is None:
            raise KeyDirBusy("the key directory is starting")
        alpha = commit_mod.label_input(lbl, version)
        known = self._absent_proofs.get(alpha) if keep else self._absent_proofs.pop(alpha, None)
        if known is None:
            pi = vrf_key.prove(alpha)
            known = (pi, index_of(proof_to_hash(pi)))
            if keep:
                self._absent_proofs[alpha] = known
        return known

    def _vrf_proof(self, lbl: bytes, version: int) -> bytes:
        return self._vrf_of(lbl, version)[0]

    def _index(self, lbl: bytes, version: int) -> bytes:
        return self._vrf_of(lbl, version)[1]

    def _first_free(self, lbl: bytes) -> int:
        """The first version of a label with no stored rows whose leaf is not in the tree:
        0, or after the versions of an erased account of the same name (tree lock held)."""
        version = 0
        while self._tree.get(self._index(lbl, version)) is not None:
            version += 1
        return version

    def _erased_before(self, lbl: bytes, versions: list[Version], epoch: Epoch) -> list[Version]:
        """``versions`` preceded by those of an erased account of the same name: in the
        tree, with no value or opening any more (shown, never opened)."""
        upto = versions[0].version if versions else None
        out: list[Version] = []
        version = 0
        with self._lock:
            if self._tree_epoch != epoch.epoch:
                raise _Moved
            while upto is None or version < upto:
                index = self._index(lbl, version)
                if self._tree.get(index) is None:
                    break
                pi = self._vrf_proof(lbl, version)
                out.append(Version(lbl.decode(), version, -1, index, pi, b"", b""))
                version += 1
        return out + versions

    def _prove(
        self, lbl: bytes, present: list[Version], absent: list[int], epoch: Epoch, opened: set[int]
    ) -> Bundle:
        if len(self._absent_proofs) > VRF_CACHE:
            self._absent_proofs.clear()
        absent_vrf = [(v, self._vrf_of(lbl, v)) for v in absent]
        absent_pis = [(v, pi) for v, (pi, _) in absent_vrf]
        indexes = [v.index for v in present] + [index for _, (_, index) in absent_vrf]
        with self._lock:
            if self._tree_epoch != epoch.epoch:
                raise _Moved
            proof = self._tree.prove(indexes)
        commitments = {
            v.version: self._tree.get(v.index)
            if _erased(v)
            else commit_mod.commit(v.opening, lbl, v.version, v.value)
            for v in present
        }
        return Bundle(
            lbl,
            [
                Present(
                    v.version,
                    v.vrf_proof,
                    commitments[v.version],
                    v.opening if v.version in opened else None,
                    v.value if v.version in opened else None,
                )
                for v in present
            ],
            absent_pis,
            _bytes(proof),
        )

    async def epoch_changes(
        self, n: int
    ) -> tuple[Epoch, Epoch | None, list[tuple[bytes, bytes]], bytes]:
        """An epoch, the one before it, the leaves it inserted and its update proof (for
        auditors)."""
        epoch = await self.store.epoch(n)
        if epoch is None:
            raise NotFound(f"no key-directory epoch {n}", code="epoch_not_found")
        before = await self.store.epoch(n - 1) if n > 0 else None
        leaves = await self.store.epoch_leaves(n)
        return epoch, before, leaves, await self.store.epoch_proof(n)


def _epoch_time(now: int, latest: Epoch | None) -> int:
    """An epoch's time: the clock's, but never before the previous epoch's (a clock stepped
    back dates epochs as the last one until it catches up): auditors refuse epochs dated
    back, since clients judge freshness and counts by these times."""
    return now if latest is None else max(now, latest.created_at)


def _erased(version: Version) -> bool:
    """A version of an erased account: its value and opening are gone, its leaf stays."""
    return not version.opening


def _same_root(service: KeyDirService, latest: Epoch | None) -> bool:
    return latest is None or bool(service._tree.root() == latest.root)


def _bytes(proof: Any) -> bytes:
    """A core proof's documented byte layout."""
    return bytes(proof.to_bytes())


def _first_people(
    about: list[tuple[int, str]], most: int, size: int
) -> tuple[list[tuple[int, str]], int]:
    """The entries (index, person) of ``about``, in index order, up to the first entry of a
    person beyond the first ``most`` people, and the index the count stops at (``size``, the
    checkpoint's, if all fit)."""
    people: set[str] = set()
    for n, (index, user) in enumerate(about):
        if user not in people:
            if len(people) >= most:
                return about[:n], index
            people.add(user)
    return about, size
