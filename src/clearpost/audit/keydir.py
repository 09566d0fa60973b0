"""Auditing the key directory's epochs (issue 17).

Every ``keydir`` entry of the log carries an epoch's root. For each one not audited before,
in order (``audit_epochs``):

1. Its epoch number follows the previous epoch's (none skipped, none repeated); the first
   is epoch 0, whose previous root is the empty tree's. Its ``through`` (the log entries
   below it are counted in their people's ``log:`` labels) is no lower than the previous
   epoch's and no higher than its own index: an epoch cannot take back a count, nor count
   entries the log did not hold yet. An epoch that keeps the ``through`` of the one before
   comes no later than its own ``log_seconds`` (and a minute's slack) after the epoch that
   set it: a server counts at its first epoch after that long, so a later one means it
   stopped counting (``count_time`` in ``core/keydir_labels.py``; entries from before
   ``log_seconds`` was logged are not judged). Its time is no earlier than the previous
   epoch's: clients judge a directory's freshness and a count's age by these times, so a
   server dating an epoch back could pass a stale view or a stopped count as on time. It
   states the same VRF key as the epochs before it, once they state one, and a heartbeat
   no higher than any server may state (``core/keydir_epoch.py``), and it is not dated
   ahead of the auditor's clock by more than twice that heartbeat and a minute (it would
   pass for current that much longer).
2. The entry is in the audited checkpoint (RFC 9162 inclusion proof).
3. ``GET /v1/keydir/epochs/{n}`` names the same root, and its update proof recomputes that
   root from the previous epoch's root (taken from the log, not from the server's answer)
   plus exactly the inserted leaves: no existing version was changed or removed
   (``core/keydir/tree.py``, ``verify_update``).

Progress is kept in ``<state>.keydir.json`` beside the audit state file (the last epoch,
its root, time and VRF key, ``through`` and when that was counted, and how far the log was
scanned), so runs are incremental.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from clearpost.audit.errors import AuditFailure, BadProof, KeyDirTransitionInvalid, LogUnavailable
from clearpost.audit.http import LogClient
from clearpost.audit.tileaudit import pipelined
from clearpost.core.clock import Clock, SystemClock
from clearpost.core.errors import InvalidInput
from clearpost.core.keydir.prefix_proof import PrefixProof
from clearpost.core.keydir.tree import EMPTY, verify_update
from clearpost.core.keydir_epoch import EpochStated, EpochStatementInvalid, stated, when
from clearpost.core.keydir_labels import (
    MAX_HEARTBEAT_SECONDS,
    MAX_LOG_SECONDS,
    CountLate,
    check_count_age,
)
from clearpost.core.tlog import Checkpoint, ProofError, leaf_hash, verify_inclusion
from clearpost.core.tlog.entries import KEYDIR_MARKER, decode_entry

_KEYDIR = KEYDIR_MARKER
"""A body without these bytes is not an epoch, so the scan skips it without decoding it
(decoding a million entries cost the auditor seconds)."""


@dataclass(frozen=True, slots=True)
class EpochAudit:
    epochs: int
    """Epochs checked in this run."""
    last_epoch: int | None
    scanned: int
    """Log entries below this index were scanned for epochs."""


class EpochScan:
    """Collects the epoch entries among the entries a log audit reads (``audit_log``'s
    ``entries``), so ``audit_epochs`` need not fetch the log a second time."""

    marker = _KEYDIR
    """From tiles, only bundles holding it are passed: a body is a byte range of its
    bundle, so one search of a bundle's bytes rules out all its entries (a full audit
    searches a million entries in 4,000 calls instead of a million)."""

    def __init__(self) -> None:
        self.start: int | None = None
        """The first index read; the audit read on from there to its checkpoint."""
        self.found: list[tuple[int, bytes]] = []

    def __call__(self, first: int, bodies: list[bytes]) -> None:
        self.found.extend((first + i, b) for i, b in enumerate(bodies) if _KEYDIR in b)

    def read_from(self, first: int) -> None:
        """The log audit read every entry from index ``first`` up to its checkpoint."""
        self.start = first


async def audit_epochs(
    log: LogClient,
    checkpoint: Checkpoint,
    state: Path | None = None,
    seen: EpochScan | None = None,
    clock: Clock | None = None,
) -> EpochAudit:
    """Steps in the module docstring; raises ``KeyDirTransitionInvalid`` on a bad epoch.

    ``seen``: the epoch entries a log audit of the same ``checkpoint`` already read (those
    bodies are the ones it checked against the signed root); what it did not read, from
    where the last run stopped, is fetched here. ``clock``: this auditor's (the system's
    unless given), against which no epoch may be dated ahead."""
    now_ms = (clock or SystemClock()).now_ms()
    saved = _load(state)
    scanned, last, root = int(saved["scanned"]), saved["epoch"], bytes.fromhex(saved["root"])
    counted = int(saved.get("through", 0))  # absent from state files before it was checked
    counted_at: int | None = saved.get("counted_at")  # when: the first epoch with ``through``
    dated: int | None = saved.get("time")  # the last epoch's time (absent from older states)
    vrf_key: str | None = saved.get("vrf_key")  # the VRF key the epochs state, once they do
    candidates: list[tuple[int, bytes]] = []
    gap_end = checkpoint.size if seen is None or seen.start is None else seen.start
    if scanned < gap_end:
        async for start, bodies in log.iter_entries(scanned, gap_end):
            candidates.extend((start + i, b) for i, b in enumerate(bodies) if _KEYDIR in b)
    if seen is not None:
        candidates.extend((i, b) for i, b in seen.found if i >= max(scanned, gap_end))
    epochs = []
    for index, body in sorted(candidates, key=lambda c: c[0]):
        try:
            entry = decode_entry(body)
        except InvalidInput:
            continue  # the log audit judges entries; only epochs matter here
        if entry.get("type") == "keydir":
            epochs.append((index, body, entry))

    async def fetch(item: tuple[int, bytes, dict[str, Any]]) -> tuple[Any, Any]:
        """The entry's inclusion proof and the server's answer for its epoch, fetched
        ahead (a few epochs at a time); a failure is kept, to be raised in order."""
        index, _, entry = item
        got: list[Any] = []
        for request in (
            log.inclusion(index, checkpoint.size),
            log._get_json(f"/v1/keydir/epochs/{entry.get('epoch')}"),
        ):
            try:
                got.append(await request)
            except AuditFailure as exc:
                got.append(exc)
        return got[0], got[1]

    checked = 0
    async with contextlib.aclosing(pipelined(fetch, epochs, _AHEAD)) as fetched:
        async for (index, body, entry), (hashes, answer) in fetched:
            epoch, new_root, through = _epoch_of(entry, index)
            # 1.
            expected = 0 if last is None else int(last) + 1
            if epoch != expected:
                raise KeyDirTransitionInvalid(
                    f"log entry {index} carries key-directory epoch {epoch}, expected {expected}"
                )
            if not counted <= through <= index:
                raise KeyDirTransitionInvalid(
                    f"epoch {epoch} (log entry {index}) counts the entries below {through}, but "
                    + (
                        f"epoch {epoch - 1} counted those below {counted}: a count taken back"
                        if through < counted
                        else "the log did not hold them yet"
                    )
                )
            time_ms, said = _read_epoch(entry, index)
            every = said.log_seconds
            vrf_key = _same_key(said, index, epoch, vrf_key)
            heartbeat = said.heartbeat_seconds
            heartbeat = MAX_HEARTBEAT_SECONDS if heartbeat is None else heartbeat
            if when(time_ms, now_ms, heartbeat * 1000) == "ahead":
                raise KeyDirTransitionInvalid(
                    f"epoch {epoch} (log entry {index}) is dated "
                    f"{(time_ms - now_ms) / 1000:,.0f} s ahead of this auditor's clock: it "
                    "would pass for current that much longer"
                )
            if dated is not None and time_ms < dated:
                raise KeyDirTransitionInvalid(
                    f"epoch {epoch} (log entry {index}) is dated {dated - time_ms:,} ms before "
                    f"epoch {epoch - 1}: epochs are never dated back"
                )
            if last is None or through > counted or counted_at is None:
                counted_at = time_ms
            elif every is not None:
                try:
                    check_count_age(counted_at, (epoch, through, time_ms), every)
                except CountLate as exc:
                    raise KeyDirTransitionInvalid(
                        f"epoch {epoch} (log entry {index}) keeps an old count: {exc.message}"
                    ) from exc
            # 2.
            try:
                size, signed = checkpoint.size, checkpoint.root_hash
                verify_inclusion(leaf_hash(body), index, size, _or_raise(hashes), signed)
            except ProofError as exc:
                raise BadProof(f"epoch {epoch}'s entry {index}: {exc}") from exc
            # 3.
            _check_transition(_or_raise(answer), epoch, root, new_root)
            last, root, counted, dated, checked = epoch, new_root, through, time_ms, checked + 1
    _save(state, checkpoint.size, last, root, counted, counted_at, dated, vrf_key)
    return EpochAudit(checked, None if last is None else int(last), checkpoint.size)


_AHEAD = 16
"""Epochs whose proof and answer are fetched ahead of the one being checked."""


def _or_raise(got: Any) -> Any:
    if isinstance(got, Exception):
        raise got
    return got


def _check_transition(body: Any, epoch: int, old_root: bytes, new_root: bytes) -> None:
    try:
        served_root = base64.b64decode(body["root"], validate=True)
        inserted = {
            base64.b64decode(leaf["index"], validate=True): base64.b64decode(
                leaf["commitment"], validate=True
            )
            for leaf in body["inserted"]
        }
        proof = PrefixProof.from_bytes(base64.b64decode(body["proof"], validate=True))
    except (KeyError, TypeError, binascii.Error, InvalidInput) as exc:
        raise LogUnavailable(f"the answer for key-directory epoch {epoch} is malformed") from exc
    if served_root != new_root:
        raise KeyDirTransitionInvalid(
            f"epoch {epoch}: the server's root is not the root the log carries"
        )
    try:
        verify_update(old_root, new_root, proof, inserted)
    except InvalidInput as exc:
        raise KeyDirTransitionInvalid(
            f"epoch {epoch} does not follow from epoch {epoch - 1}: {exc.message} (an existing "
            "version was changed or removed, or leaves were added that it does not list)"
        ) from exc


def _read_epoch(entry: dict[str, Any], index: int) -> tuple[int, EpochStated]:
    """An epoch entry's time and what it states (``core/keydir_epoch.py``), with no
    ``log_seconds`` above what any server may state."""
    time_ms = entry.get("time")
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise KeyDirTransitionInvalid(f"log entry {index} is an epoch without a time")
    try:
        said = stated(entry)
    except EpochStatementInvalid as exc:
        raise KeyDirTransitionInvalid(f"log entry {index}: {exc.message}") from exc
    every = said.log_seconds
    if every is not None and every > MAX_LOG_SECONDS:
        raise KeyDirTransitionInvalid(
            f"log entry {index} says the directory counts the entries about people only every "
            f"{every:,} s, but no server may wait more than {MAX_LOG_SECONDS:,} s"
        )
    return time_ms, said


def _same_key(said: EpochStated, index: int, epoch: int, before: str | None) -> str | None:
    """The VRF key (base64) an epoch states, which must be the one the epochs before it
    stated, if they did."""
    key = said.vrf_public_key
    now = None if key is None else base64.b64encode(key).decode()
    if before is not None and now != before:
        raise KeyDirTransitionInvalid(
            f"epoch {epoch} (log entry {index}) states "
            + ("no VRF key" if now is None else f"the VRF key {now}")
            + f", but the epochs before it stated {before}: a device handed another key "
            "would look people up under labels their owners never check"
        )
    return now


def _epoch_of(entry: dict[str, Any], index: int) -> tuple[int, bytes, int]:
    try:
        epoch, root, through = entry["epoch"], bytes.fromhex(entry["root"]), entry["through"]
    except (KeyError, TypeError, ValueError) as exc:
        raise KeyDirTransitionInvalid(f"log entry {index} is a malformed epoch") from exc
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, through)):
        raise KeyDirTransitionInvalid(f"log entry {index} is a malformed epoch")
    if len(root) != 32:
        raise KeyDirTransitionInvalid(f"log entry {index} is a malformed epoch")
    return epoch, root, through


def _path(state: Path | None) -> Path | None:
    return None if state is None else state.with_name(state.name + ".keydir.json")


def _load(state: Path | None) -> dict[str, Any]:
    path = _path(state)
    if path is not None and path.exists():
        loaded: dict[str, Any] = orjson.loads(path.read_bytes())
        return loaded
    return {"scanned": 0, "epoch": None, "root": EMPTY.hex(), "through": 0, "counted_at": None}


def _save(
    state: Path | None,
    scanned: int,
    epoch: Any,
    root: bytes,
    through: int,
    counted_at: int | None,
    dated: int | None,
    vrf_key: str | None,
) -> None:
    path = _path(state)
    if path is not None:
        saved = {
            "scanned": scanned,
            "epoch": epoch,
            "root": root.hex(),
            "through": through,
            "counted_at": counted_at,
            "time": dated,
            "vrf_key": vrf_key,
        }
        path.write_bytes(orjson.dumps(saved))
