"""The key directory, checked on this device (issue 17).

A contact's devices are encrypted to only when their signed keys are in the directory's
current version of the contact's ``devices:`` label, and every device monitors its own
account's label. Verifying a directory answer (``Directory.verify``):

1. Take the directory's VRF key (the one this device pinned before; else the one the server
   publishes, pinned once an answer verifies under it) and the log key (shared with
   ``transparency.py``).
2. The answer's epoch entry is a ``keydir`` log entry of the epoch the answer names, and
   its root is the root the proofs are checked against.
3. The checkpoint is signed by the pinned log key and extends the last checkpoint this
   device verified (consistency proof); the entry is included in it (RFC 9162).
4. The epoch states the VRF key of step 1 (``core/keydir_epoch.py``: the log says which
   key everyone's labels are under, so no device can be handed its own), is not older than
   the newest epoch this device has verified (a server showing an older version of a label
   must show an older epoch), and within twice the heartbeat it states plus a minute of
   this device's clock: not older (a server cannot freeze the view), nor dated ahead (an
   epoch dated a day ahead would pass for current for a day).
5. The VRF proofs, commitments and prefix-tree proof (``core/keydir/proofs.py``) show the
   versions the answer must show: a lookup, an absence or a history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson

from clearpost.audit.errors import AuditFailure, LogUnavailable, ServerRefused
from clearpost.audit.http import LogClient
from clearpost.client.errors import ClientError, DeviceVerificationFailed, LogVerificationFailed
from clearpost.client.model import DirectoryAlarm
from clearpost.client.store import DeviceStore
from clearpost.client.transparency import extends_last, open_pinned, pin_log
from clearpost.client.transport import Transport, path_segment
from clearpost.core.canonical import canonical_json
from clearpost.core.clock import Clock
from clearpost.core.errors import InvalidInput
from clearpost.core.keydir.proofs import (
    Bundle,
    check_absence,
    check_lookup,
    check_lookup_since,
    history_absent,
    history_shown,
    verify_bundle,
)
from clearpost.core.keydir_epoch import EpochStated, EpochStatementInvalid, stated, when
from clearpost.core.keydir_labels import (
    MAX_HEARTBEAT_SECONDS,
    CountLate,
    count_time,
    log_chain,
    parse_devices_value,
    parse_log_value,
)
from clearpost.core.tlog import ProofError, leaf_hash, verify_inclusion
from clearpost.core.tlog.entries import decode_entry

log = logging.getLogger("clearpost.client")

_VRF_PIN = "keydir_vrf_key"
_EPOCH = "keydir_epoch"
_OWN = "keydir_own_devices"
_PIN = "log_pin"
_LAST = "log_checkpoint"
_SEEN = "keydir_seen:"  # + user id: the greatest version of a contact's label verified
MONITOR_EVERY_MS = 60_000


class DirectoryVerificationFailed(LogVerificationFailed):
    """A key-directory answer does not verify: evidence against the server, not retried."""

    code = "keydir_verification_failed"


class DeviceNotInDirectory(DeviceVerificationFailed):
    """The server named a device whose signed keys are not in the user's directory label."""

    code = "device_not_in_directory"


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified directory answer."""

    label: str
    epoch: int
    through: int
    time_ms: int
    checkpoint_size: int
    checkpoint_root: bytes
    log_seconds: int | None
    """The epoch entry's ``log_seconds`` (None in entries from before it was logged)."""
    values: dict[int, bytes]
    """The opened versions (a lookup: one; a history: all; an absence: none)."""

    @property
    def version(self) -> int | None:
        return max(self.values) if self.values else None


class Directory:
    def __init__(
        self, transport: Transport, store: DeviceStore, clock: Clock, user_id: str, device_id: str
    ) -> None:
        self.transport, self.store, self.clock = transport, store, clock
        self.user_id, self.device_id = user_id, device_id
        self._heartbeat_ms: int | None = None
        self.log_seconds: int | None = None
        """How often at the most the server counts entries about you in your ``log:`` label
        (``GET /v1/keydir/key``; None from a server that does not say)."""
        self.checks = 0
        self.bytes_read = 0
        self.monitor_every_ms = MONITOR_EVERY_MS
        """At a sync, the own label is checked when this long has passed since the last
        check (0: at every sync), and at once when the sync brought a change of your devices."""
        self._last_monitor_ms: int | None = None
        self.alarms: list[DirectoryAlarm] = []
        """Every alarm raised so far by this client."""

    # --- verifying ---

    async def _vrf_key(self) -> tuple[bytes, bool]:
        """The VRF key to verify with, and whether this device pinned it before; else it is
        the one the server publishes, pinned once an answer verifies under it and the
        answer's epoch states it (step 4)."""
        saved = self.store.get_meta(_VRF_PIN)
        if saved is not None and self._heartbeat_ms is not None:
            return saved, True
        info = await self.transport.request("GET", "/v1/keydir/key")
        heartbeat = int(info["heartbeat_seconds"])
        if not 0 <= heartbeat <= MAX_HEARTBEAT_SECONDS:
            raise DirectoryVerificationFailed(
                f"the key directory says it may go {heartbeat:,} s without an epoch, but no "
                f"server may wait more than {MAX_HEARTBEAT_SECONDS:,} s: this device would "
                "accept a directory frozen that long",
                code="keydir_bad_response",
            )
        self._heartbeat_ms = heartbeat * 1000
        every = info.get("log_seconds")
        self.log_seconds = every if isinstance(every, int) and not isinstance(every, bool) else None
        if saved is not None:
            return saved, True
        return base64.b64decode(str(info["vrf_public_key"]), validate=True), False

    async def verify(
        self,
        answer: dict[str, Any],
        shape: str,
        since: int | None = None,
        known: tuple[int, bytes] | None = None,
    ) -> Verified:
        """Steps 1-5 of the module docstring; ``shape`` is lookup, history or either (a
        history; after version ``since``, if given). ``known``: a lookup asked as a repeat
        lookup by a device that verified that (version, value) of the label before."""
        self.checks += 1
        self.bytes_read += len(orjson.dumps(answer))
        try:
            return await self._verify(answer, shape, since, known)
        except (LogUnavailable, ServerRefused) as exc:
            raise ClientError(
                f"cannot read the log: {exc.message}", code="log_unavailable"
            ) from exc
        except LogVerificationFailed as exc:
            if isinstance(exc, DirectoryVerificationFailed):
                raise
            raise DirectoryVerificationFailed(exc.message, code=exc.code) from exc
        except AuditFailure as exc:
            raise DirectoryVerificationFailed(exc.message, code=f"log_{exc.code}") from exc
        except _MALFORMED as exc:
            raise _malformed(exc) from exc

    async def _verify(
        self,
        answer: dict[str, Any],
        shape: str,
        since: int | None,
        known: tuple[int, bytes] | None,
    ) -> Verified:
        # 1.
        vrf_key, pinned = await self._vrf_key()
        log_client = LogClient(self.transport.http)
        pin, new_pin, _ = await pin_log(log_client, self.store, None)
        # 2.
        epoch = int(answer["epoch"])
        body, entry = _epoch_entry(answer, epoch, "the answer's log entry")
        root = bytes.fromhex(str(entry["root"]))
        # 3.
        note = str(answer["checkpoint"])
        checkpoint = open_pinned(note, pin)
        await extends_last(log_client, self.store, checkpoint, note, pin)
        _included(body, answer, checkpoint.size, checkpoint.root_hash, "the epoch's root")
        # 4.
        seen = self.store.get_meta(_EPOCH)
        newest = int(seen) if seen else -1
        if epoch < newest:
            raise DirectoryVerificationFailed(
                f"the key directory answered from epoch {epoch}, but this device already "
                f"verified epoch {newest}: the server showed an older directory",
                code="keydir_rollback",
            )
        said = _stated(entry)
        if said.vrf_public_key is not None and said.vrf_public_key != vrf_key:
            raise DirectoryVerificationFailed(
                f"the key directory's epoch {epoch} states the VRF key "
                f"{_b64(said.vrf_public_key)}, but this device "
                f"{'pinned' if pinned else 'was handed'} {_b64(vrf_key)}: labels under a key "
                "the log does not state are ones no account's owner checks",
                code="keydir_key_not_logged",
            )
        time_ms = int(entry["time"])
        assert self._heartbeat_ms is not None
        heartbeat_ms = (
            self._heartbeat_ms if said.heartbeat_seconds is None else said.heartbeat_seconds * 1000
        )
        now_ms = self.clock.now_ms()
        current = when(time_ms, now_ms, heartbeat_ms)
        if current == "stale":
            raise DirectoryVerificationFailed(
                f"the key directory's epoch {epoch} is older than its heartbeat allows: the "
                "server is showing a stale directory",
                code="keydir_stale",
            )
        if current == "ahead":
            raise DirectoryVerificationFailed(
                f"the key directory's epoch {epoch} is dated {(time_ms - now_ms) / 1000:,.0f} s "
                "ahead of this device's clock: it would pass for current that much longer, "
                "so the server could keep showing it (check this device's clock)",
                code="keydir_dated_ahead",
            )
        # 5.
        bundle = Bundle.from_json(answer)
        values: dict[int, bytes] = {}
        if shape == "history":
            values = _check_history(vrf_key, root, bundle, since)
        elif known is not None:  # a repeat lookup: the value is known if nothing is new
            n, value = check_lookup_since(vrf_key, root, bundle, known[0])
            values = {n: known[1] if value is None else value}
        elif bundle.present:
            n, value = check_lookup(vrf_key, root, bundle)
            values = {n: value}
        else:
            check_absence(vrf_key, root, bundle)
        if new_pin:
            self.store.set_meta(_PIN, orjson.dumps({"origin": pin.origin, "vkey": pin.vkey}))
        if not pinned:
            self.store.set_meta(_VRF_PIN, vrf_key)
        self.store.set_meta(_LAST, note.encode())
        self.store.set_meta(_EPOCH, str(epoch).encode())
        self.store.commit()
        return Verified(
            bundle.label.decode(),
            epoch,
            int(entry["through"]),
            time_ms,
            checkpoint.size,
            checkpoint.root_hash,
            said.log_seconds,
            values,
        )

    # --- contacts ---

    async def lookup(self, user_id: str) -> Verified:
        """The greatest version of ``devices:<user_id>`` (or its proven absence), verified,
        and checked to be the label asked for. Once a version was verified, later lookups
        are repeat lookups from it (``lookup_since``: the ladder versions up to it, and its
        value while it is the greatest, are not sent again)."""
        known = self._seen(user_id)
        path = f"/v1/keydir/devices/{path_segment(user_id)}"
        answer = await self.transport.request(
            "GET", path if known is None else f"{path}?since={known[0]}"
        )
        found = await self.verify(answer, "lookup", known=known)
        if found.label != f"devices:{user_id}":
            raise DirectoryVerificationFailed(
                "the key directory answered for another account", code="keydir_wrong_label"
            )
        if found.version is not None:
            n = found.version
            seen = {"version": n, "value": base64.b64encode(found.values[n]).decode()}
            self.store.set_meta(_SEEN + user_id, orjson.dumps(seen))
            self.store.commit()
        return found

    def _seen(self, user_id: str) -> tuple[int, bytes] | None:
        """The greatest version of the contact's label this device verified, and its value."""
        raw = self.store.get_meta(_SEEN + user_id)
        if raw is None:
            return None
        seen = orjson.loads(raw)
        return int(seen["version"]), base64.b64decode(seen["value"])

    async def devices(self, user_id: str) -> list[dict[str, Any]]:
        """The signed device keys of ``user_id`` that the directory holds now, verified."""
        found = await self.lookup(user_id)
        return [] if found.version is None else parse_devices_value(found.values[found.version])

    async def refuse_unlisted(self, user_id: str, entries: list[dict[str, Any]]) -> dict[str, str]:
        """The devices of ``entries`` (the server's device list) whose signed keys are not in
        the directory, each with the reason they are refused."""
        listed = {_digest(d) for d in await self.devices(user_id)}
        out: dict[str, str] = {}
        for entry in entries:
            keys = entry.get("device_keys")
            if not isinstance(keys, dict):
                continue
            if _digest(keys) not in listed:
                device = str(entry.get("device_id"))
                out[device] = (
                    f"device {device} of {user_id} is not in the key directory: refusing to "
                    "encrypt to it (the server named a device everyone else may not see)"
                )
        return out

    # --- self-monitoring ---

    async def history(self, since: int | None = None) -> Verified:
        """This account's ``devices:`` label, verified: every version, or (``since``, the
        greatest version this device verified before) only the later ones, none while it is
        still the greatest. The older ones are still in the tree, which only grows."""
        path = "/v1/me/keydir/devices" + ("" if since is None else f"?since={since}")
        answer = await self.transport.request("GET", path)
        found = await self.verify(answer, "history", since)
        if found.label != f"devices:{self.user_id}":
            raise DirectoryVerificationFailed(
                "the key directory answered for another account", code="keydir_wrong_label"
            )
        return found

    async def monitor(self) -> list[DirectoryAlarm]:
        """Check this account's label; an alarm for each version this device did not make."""
        saved = self.store.get_meta(_OWN)
        state: dict[str, Any] = orjson.loads(saved) if saved else {"version": -1, "devices": {}}
        last = int(state["version"])
        found = await self.history(since=None if last < 0 else last)
        # nothing opened after ``last``: the greatest version is still ``last``
        latest = last if found.version is None else found.version
        alarms: list[DirectoryAlarm] = []
        if latest < last:
            alarms.append(DirectoryAlarm(self.user_id, latest, found.epoch, rolled_back=True))
        before: dict[str, str] = dict(state["devices"])
        for version in range(last + 1, latest + 1):
            if version not in found.values:
                continue  # an erased earlier account of this name
            now = {
                str(d.get("device_id")): _digest(d)
                for d in parse_devices_value(found.values[version])
            }
            added = tuple(sorted(d for d in now if before.get(d) != now[d]))
            removed = tuple(sorted(set(before) - set(now)))
            if last >= 0 and not _mine(added, removed, self.device_id):
                alarms.append(DirectoryAlarm(self.user_id, version, found.epoch, added, removed))
            before = now
        if latest >= last:
            self.store.set_meta(_OWN, orjson.dumps({"version": latest, "devices": before}))
            self.store.commit()
        for alarm in alarms:
            log.warning("%s", alarm.describe())
        return alarms

    async def at_sync(self, events: list[Any]) -> list[Any]:
        """The sync hook: monitor when due; the alarms are the sync's extra events."""
        now = self.clock.now_ms()
        own_change = any(
            getattr(e, "own", False) or getattr(e, "user_id", None) == self.user_id
            for e in events
            if type(e).__name__ == "DeviceListChange"
        )
        last = self._last_monitor_ms
        if not own_change and last is not None and now - last < self.monitor_every_ms:
            return []
        self._last_monitor_ms = now
        alarms = await self.monitor()
        self.alarms += alarms
        return list(alarms)

    # --- completeness of the access history ---

    async def log_label(self) -> LogLabel:
        """This account's ``log:`` label, verified: the log entries about you below
        ``through`` are exactly ``count``, chained to ``chain``, and they were counted no
        longer before the answer's epoch than its ``log_seconds`` and a minute allow
        (``count_time``)."""
        answer = await self.transport.request("GET", "/v1/me/keydir/log")
        found = await self.verify(answer, "lookup")
        if found.label != f"log:{self.user_id}":
            raise DirectoryVerificationFailed(
                "the key directory answered for another account", code="keydir_wrong_label"
            )
        every = found.log_seconds if found.log_seconds is not None else self.log_seconds
        if every is None:
            raise DirectoryVerificationFailed(
                "neither the epoch's log entry nor the server says how often the key "
                "directory counts the log entries about people (log_seconds), so a count it "
                "stopped taking cannot be told",
                code="keydir_invalid_proof",
            )
        try:
            shown = _count_epochs(answer, found)
            counted_at = count_time(shown, (found.epoch, found.through, found.time_ms), every)
        except CountLate as exc:
            raise DirectoryVerificationFailed(exc.message, code=exc.code) from exc
        except _MALFORMED as exc:
            raise _malformed(exc) from exc
        if found.version is None:
            return LogLabel(0, bytes(32), found.through, counted_at, every)
        count, chain = parse_log_value(found.values[found.version])
        return LogLabel(count, chain, found.through, counted_at, every)


_MALFORMED = (InvalidInput, KeyError, TypeError, ValueError, binascii.Error)
"""What reading a malformed answer raises."""


def _malformed(exc: Exception) -> DirectoryVerificationFailed:
    message = exc.message if isinstance(exc, InvalidInput) else str(exc)
    return DirectoryVerificationFailed(
        f"the key directory's answer does not verify: {message}", code="keydir_invalid_proof"
    )


@dataclass(frozen=True, slots=True)
class LogLabel:
    """A verified ``log:`` label (``Directory.log_label``)."""

    count: int
    chain: bytes
    through: int
    counted_at_ms: int
    """When the entries below ``through`` were counted (the server's clock)."""
    every: int
    """The server counts newer entries at most this often, in seconds (the epoch's
    ``log_seconds``)."""


def _stated(entry: dict[str, Any]) -> EpochStated:
    """What an epoch's entry states (``core/keydir_epoch.py``)."""
    try:
        return stated(entry)
    except EpochStatementInvalid as exc:
        raise DirectoryVerificationFailed(exc.message, code=exc.code) from exc


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _count_epochs(answer: dict[str, Any], found: Verified) -> list[tuple[int, int, int]]:
    """(epoch, through, time) of each epoch in the answer's ``counted``, each checked to be
    that epoch's ``keydir`` entry, included in the answer's checkpoint."""
    shown = []
    what = "an epoch the answer shows for its count"
    for item in answer["counted"]:
        body, entry = _epoch_entry(item, int(item["epoch"]), what)
        _included(body, item, found.checkpoint_size, found.checkpoint_root, what)
        shown.append((int(entry["epoch"]), int(entry["through"]), int(entry["time"])))
    return shown


def _epoch_entry(item: dict[str, Any], epoch: int, what: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes of ``item["entry"]`` and the entry, checked to be ``epoch``'s ``keydir``
    entry."""
    body = base64.b64decode(str(item["entry"]), validate=True)
    entry = decode_entry(body)
    if entry.get("type") != "keydir" or entry.get("epoch") != epoch:
        raise DirectoryVerificationFailed(
            f"{what} is not its epoch's key-directory entry", code="keydir_wrong_entry"
        )
    return body, entry


def _included(body: bytes, item: dict[str, Any], size: int, root: bytes, what: str) -> None:
    """``body`` is entry ``item["log_index"]`` of the checkpoint of ``size`` and ``root``,
    by the RFC 9162 inclusion proof ``item["inclusion"]``."""
    hashes = [base64.b64decode(h, validate=True) for h in item["inclusion"]]
    try:
        verify_inclusion(leaf_hash(body), int(item["log_index"]), size, hashes, root)
    except ProofError as exc:
        raise DirectoryVerificationFailed(
            f"{what} is not in the signed log: {exc}", code="keydir_not_in_log"
        ) from exc


def _check_history(
    vrf_key: bytes, root: bytes, bundle: Bundle, since: int | None
) -> dict[int, bytes]:
    """A history (``history_shown``): versions ``0..n`` present, or only those after
    ``since`` (none: ``since`` is still the greatest; ``n`` alone: the label went back below
    it), the absent versions of ``n``'s lookup ladder absent (``n + 1`` among them: see
    ``history_absent``), and every version from some ``k`` on opened. Versions below ``k``
    are an earlier, erased account of the same name (its values and openings were deleted;
    its leaves stay): they are shown, not opened."""
    opened = verify_bundle(vrf_key, root, bundle)
    shown = sorted(p.version for p in bundle.present)
    n = shown[-1] if shown else (-1 if since is None else since)
    absent = sorted(v for v, _ in bundle.absent)
    if shown != history_shown(n, since) or absent != history_absent(n):
        raise DirectoryVerificationFailed(
            "a history shows the versions asked for up to the greatest, n, present and the"
            " versions above n that any lookup of a later version would show, absent",
            code="keydir_invalid_proof",
        )
    if sorted(opened) != list(range(n + 1 - len(opened), n + 1)):
        raise DirectoryVerificationFailed(
            "a history opens every version of the account", code="keydir_invalid_proof"
        )
    return opened


def _digest(signed_keys: dict[str, Any]) -> str:
    """The device's signed keys, without ``unsigned`` (Matrix's field outside the signature,
    which a key query adds: the device's display name for its owner)."""
    signed = {k: v for k, v in signed_keys.items() if k != "unsigned"}
    return hashlib.sha256(canonical_json(signed)).hexdigest()


def _mine(added: tuple[str, ...], removed: tuple[str, ...], device_id: str) -> bool:
    """A version this device made: its own keys published (and nothing else changed)."""
    return added == (device_id,) and not removed


async def check_complete(directory: Directory, indexes: list[int]) -> LogLabel:
    """The access history is complete: the log entries about you below the directory's
    ``through`` are exactly the ones your ``log:`` label counts (same number, same hash
    chain of indexes). ``indexes``: every entry the server listed as about you. Returns the
    verified label; raises ``DirectoryVerificationFailed`` (``log_incomplete``) otherwise."""
    found = await directory.log_label()
    count, chain, through = found.count, found.chain, found.through
    below = sorted(i for i in indexes if i < through)
    n, got = log_chain(below)
    if (n, got) != (count, chain):
        missing = count - n
        raise DirectoryVerificationFailed(
            f"the key directory counts {count} log entries about you below index {through}, "
            f"but the server listed {n}"
            + (f": it left {missing} out of your history" if missing > 0 else "")
            + ("" if missing > 0 else ": the listed entries are not the ones committed"),
            code="log_incomplete",
        )
    return found
