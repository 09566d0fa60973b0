"""The transparency-log entries about you, checked on this device.

Every partner access, consent and revocation about you, and every device-key change of
your account, is in the public log under a *subject commitment* that only your devices
can open. ``verify_log`` checks what ``GET /v1/me/log-entries`` returns, so the server
cannot show you a record that is not in the log everyone else sees:

1. Pin the log key: the one this device pinned before (a different ``vkey`` given now is
   refused), else the ``vkey`` given, else the key the log publishes (trust on first use,
   then pinned in the device store).
2. Fetch the entries about you, your salt, and the latest checkpoint.
3. Open the checkpoint: signed by the pinned key, for the pinned origin.
4. Compare it with the checkpoint this device verified last: a smaller one is a rollback,
   the same size with another root a fork; a larger one must be proven to extend it
   (RFC 9162 consistency proof). Then remember it.
5. With ``cosigned=N``: fetch the latest checkpoint carrying N cosignatures, verify the
   cosignatures of the witness keys you trust (at least N distinct ones), and prove it
   consistent with the checkpoint of step 3. Entries inside the cosigned tree are
   *witnessed*: the log showed the witnesses the same history.
6. Open each entry's subject commitment. From format version 2 (``"v": 2``) every entry
   has its own, and the server sends its opening (a nonce; for a device entry also the
   device id and keys): the commitment recomputed from your salt, your user id and the
   opening must be the entry's subject. An older entry's subject must be
   ``SHA-256(salt || your user id)``, which must also be the subject the server names.
7. Check each entry: canonical JSON of a known type, and an inclusion proof from its leaf
   hash to the signed root. An entry appended after the checkpoint has no proof yet and
   is reported as pending.

What this alone cannot show: that the server returned *every* entry about you. The key
directory's ``log:`` label does (issue 17): ``Client.verify_log`` also checks the list
against it (``client/directory.py``, ``check_complete``), so an entry left out fails.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from clearpost.audit.errors import AuditFailure, BadSignature, LogUnavailable, ServerRefused
from clearpost.audit.http import LogClient
from clearpost.audit.state import LogPin
from clearpost.audit.trust import open_log_checkpoint
from clearpost.client.errors import ClientError, LogVerificationFailed
from clearpost.client.log_entries import LogEntry, decode, items, open_subject
from clearpost.client.log_entries import b64 as _b64
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.core.errors import InvalidInput
from clearpost.core.tlog import (
    Checkpoint,
    CosignatureVerifier,
    KeyFormatError,
    ProofError,
    Verifier,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from clearpost.core.tlog.entries import commitment

__all__ = ["LogEntry", "VerifiedLog", "parse_witnesses", "read_log", "verify_log"]

_PIN = "log_pin"
_LAST = "log_checkpoint"


@dataclass(frozen=True, slots=True)
class VerifiedLog:
    """The outcome of ``verify_log``: what was checked, against what."""

    origin: str
    vkey: str
    checkpoint: Checkpoint
    note: str
    subject: str
    entries: tuple[LogEntry, ...]
    witnessed_size: int | None = None
    """Size of the cosigned checkpoint relied on (None when no cosignatures were asked)."""
    witnesses: tuple[str, ...] = ()
    """Names of the witnesses whose cosignatures verified."""
    trusted_on_first_use: bool = False
    """True when this call took the log key the server publishes and pinned it."""
    total: int | None = None
    """How many entries about you the server counts."""
    complete_through: int | None = None
    """Set when the key directory proved the list complete: every entry about you below
    this log index is in ``entries`` (``client/directory.py``, ``check_complete``)."""
    counted_every: int | None = None
    """Seconds: the key directory counts newer entries about you at most this often (the
    server's ``keydir_log_seconds``), so those at or above ``complete_through`` are counted
    within about that long."""
    counted_at_ms: int | None = None
    """When the entries below ``complete_through`` were counted, by the server's clock
    (checked to be no older than ``counted_every`` and a minute before the directory's
    epoch)."""

    @property
    def pending(self) -> int:
        """Entries newer than the checkpoint (their proofs come with the next one)."""
        return sum(1 for e in self.entries if not e.verified)

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "vkey": self.vkey,
            "size": self.checkpoint.size,
            "root": binascii.b2a_base64(self.checkpoint.root_hash, newline=False).decode(),
            "checkpoint": self.note,
            "subject": self.subject,
            "witnessed_size": self.witnessed_size,
            "witnesses": list(self.witnesses),
            "trusted_on_first_use": self.trusted_on_first_use,
            "pending": self.pending,
            "total": self.total,
            "complete_through": self.complete_through,
            "counted_every": self.counted_every,
            "counted_at": self.counted_at_ms,
            "entries": [e.to_json() for e in self.entries],
        }


def parse_witnesses(vkeys: Sequence[str]) -> list[CosignatureVerifier]:
    """Witness verifier keys (C2SP ``cosignature/v1`` vkeys); a malformed one is refused."""
    out = []
    for vkey in vkeys:
        try:
            out.append(CosignatureVerifier.from_vkey(vkey.strip()))
        except KeyFormatError as exc:
            raise InvalidInput(
                f"witness key {vkey[:40]!r} is not a cosignature/v1 verifier key: {exc.message}",
                code="invalid_witness_key",
            ) from exc
    return out


async def read_log(transport: Transport, user_id: str) -> list[LogEntry]:
    """The entries about you, decoded but NOT verified (``verify_log`` checks them)."""
    answer = await transport.my_log_entries()
    return [decode(i.index, i.body) for i in items(answer, user_id)]


async def verify_log(
    transport: Transport,
    store: DeviceStore,
    user_id: str,
    *,
    vkey: str | None = None,
    witnesses: Sequence[str] = (),
    cosigned: int = 0,
) -> VerifiedLog:
    """Fetch and verify the log entries about ``user_id``; steps in the module docstring.
    Raises ``LogVerificationFailed`` naming the check (and entry) that failed."""
    log = LogClient(transport.http)
    trusted = parse_witnesses(witnesses)
    if cosigned < 0 or cosigned > len(trusted):
        raise InvalidInput(
            f"cannot require {cosigned} cosignatures from {len(trusted)} trusted witness keys",
            code="invalid_witness_policy",
        )
    try:
        # 1.
        pin, new_pin, tofu = await pin_log(log, store, vkey)
        # 2.
        answer = await transport.my_log_entries()
        # 3.
        note = answer.get("checkpoint")
        if not isinstance(note, str):
            raise LogVerificationFailed(
                "the log has not signed a checkpoint yet; nothing can be verified",
                code="log_no_checkpoint",
            )
        checkpoint = open_pinned(note, pin)
        # 4.
        await extends_last(log, store, checkpoint, note, pin)
        # 5.
        witnessed_size: int | None = None
        names: tuple[str, ...] = ()
        if cosigned:
            witnessed_size, names = await _witnessed(log, pin, trusted, cosigned, checkpoint)
        # 6. and 7.
        entries = _check_entries(answer, user_id, checkpoint, witnessed_size)
    except (LogUnavailable, ServerRefused) as exc:
        raise ClientError(f"cannot read the log: {exc.message}", code="log_unavailable") from exc
    except AuditFailure as exc:  # any other verdict of the audit library
        raise LogVerificationFailed(exc.message, code=f"log_{exc.code}") from exc
    if new_pin:
        store.set_meta(_PIN, orjson.dumps({"origin": pin.origin, "vkey": pin.vkey}))
    store.set_meta(_LAST, note.encode())
    store.commit()
    return VerifiedLog(
        pin.origin,
        pin.vkey,
        checkpoint,
        note,
        str(answer["subject"]),
        tuple(entries),
        witnessed_size,
        names,
        tofu,
        _total(answer.get("total")),
    )


def _total(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def pin_log(
    log: LogClient, store: DeviceStore, vkey: str | None
) -> tuple[LogPin, bool, bool]:
    """(the pin, whether it is new, whether it was trusted on first use)."""
    # 1.
    saved = store.get_meta(_PIN)
    if saved is not None:
        d = orjson.loads(saved)
        pin = LogPin(str(d["origin"]), str(d["vkey"]))
        if vkey is not None and vkey != pin.vkey:
            raise LogVerificationFailed(
                f"this device pinned the log key {pin.vkey}; the key given ({vkey}) differs",
                code="log_key_mismatch",
            )
        return pin, False, False
    if vkey is not None:
        try:
            return LogPin(Verifier.from_vkey(vkey).name, vkey), True, False
        except KeyFormatError as exc:
            raise InvalidInput(
                f"the log key is not a verifier key: {exc.message}", code="invalid_log_key"
            ) from exc
    info = await log.key()
    try:
        Verifier.from_vkey(info.vkey)
    except KeyFormatError as exc:
        raise LogVerificationFailed(
            f"the log publishes a malformed key: {exc.message}", code="log_bad_response"
        ) from exc
    return LogPin(info.origin, info.vkey), True, True


def open_pinned(
    note: str, pin: LogPin, witnesses: Sequence[CosignatureVerifier] = ()
) -> Checkpoint:
    """The checkpoint ``note`` signed by the pinned log key (and ``witnesses``), or the
    client's ``log_bad_signature`` error."""
    try:
        checkpoint, _ = open_log_checkpoint(note, pin, witnesses)
    except BadSignature as exc:
        raise LogVerificationFailed(exc.message, code="log_bad_signature") from exc
    return checkpoint


async def extends_last(
    log: LogClient, store: DeviceStore, checkpoint: Checkpoint, note: str, pin: LogPin
) -> None:
    """``checkpoint`` is consistent with the last one this device verified (if any)."""
    # 4.
    saved = store.get_meta(_LAST)
    if saved is None or saved == note.encode():  # the same note: nothing to compare
        return
    try:
        last, _ = open_log_checkpoint(saved.decode(), pin)
    except AuditFailure:
        return  # unreadable (the store's meta is not sealed): nothing to compare with
    if checkpoint.size < last.size:
        raise LogVerificationFailed(
            f"the log shows {checkpoint.size} entries, but this device already verified a "
            f"checkpoint of {last.size}: the log was rolled back",
            code="log_rollback",
            evidence=(saved.decode(), note),
        )
    await _consistent(log, last, checkpoint, "the checkpoint this device verified before")


async def _consistent(log: LogClient, old: Checkpoint, new: Checkpoint, what: str) -> None:
    """``new`` extends ``old`` (equal roots at equal sizes; else a consistency proof)."""
    if old.size == new.size:
        if old.root_hash != new.root_hash:
            raise LogVerificationFailed(
                f"the log signed two different trees of {new.size} entries ({what} and "
                "the current one): a forked history",
                code="log_inconsistent",
            )
        return
    if old.size == 0:
        return
    small, large = (old, new) if old.size < new.size else (new, old)
    try:
        proof = await log.consistency(small.size, large.size)
    except ServerRefused as exc:  # a log that cannot prove it only grew: treat as a fork
        raise LogVerificationFailed(
            f"the log refused to prove that its tree of {large.size} entries extends its tree "
            f"of {small.size} ({what}): {exc.message}",
            code="log_inconsistent",
        ) from exc
    try:
        verify_consistency(small.size, large.size, small.root_hash, large.root_hash, proof)
    except ProofError as exc:
        raise LogVerificationFailed(
            f"the log's tree of {large.size} entries does not extend its tree of "
            f"{small.size} ({what}): {exc.message}",
            code="log_inconsistent",
        ) from exc


async def _witnessed(
    log: LogClient,
    pin: LogPin,
    trusted: Sequence[CosignatureVerifier],
    cosigned: int,
    checkpoint: Checkpoint,
) -> tuple[int, tuple[str, ...]]:
    # 5.
    try:
        note = await log.checkpoint(cosigned)
    except ServerRefused as exc:
        if exc.problem == "checkpoint_not_found":
            raise LogVerificationFailed(
                f"no checkpoint of the log carries {cosigned} witness cosignatures yet",
                code="log_not_enough_cosignatures",
            ) from exc
        raise
    try:
        witnessed, opened = open_log_checkpoint(note, pin, trusted)
    except BadSignature as exc:
        raise LogVerificationFailed(
            f"the cosigned checkpoint does not verify: {exc.message}", code="log_bad_signature"
        ) from exc
    keys = {(w.name, w.key_id) for w in trusted}
    names = tuple(sorted({s.name for s in opened.signatures if (s.name, s.key_id) in keys}))
    if len(names) < cosigned:
        raise LogVerificationFailed(
            f"the cosigned checkpoint carries {len(names)} valid cosignatures from the "
            f"witnesses you trust; {cosigned} are required",
            code="log_not_enough_cosignatures",
        )
    await _consistent(log, witnessed, checkpoint, "the cosigned checkpoint")
    return min(witnessed.size, checkpoint.size), names


def _check_entries(
    answer: dict[str, Any], user_id: str, checkpoint: Checkpoint, witnessed_size: int | None
) -> list[LogEntry]:
    # 6.
    try:
        salt = _b64(answer["salt"])
        subject = commitment(salt, user_id)
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidInput) as exc:
        raise LogVerificationFailed(
            "the answer carries no usable salt (32 bytes, base64)", code="log_bad_response"
        ) from exc
    if answer.get("subject") != subject:
        raise LogVerificationFailed(
            f"the salt does not open the subject commitment to {user_id}: SHA-256(salt || "
            "user id) is not the subject the server names",
            code="log_subject_mismatch",
        )
    out = []
    for item in items(answer, user_id):
        index, body, proof = item.index, item.body, item.proof
        entry = open_subject(decode(index, body), item, salt, user_id, subject)
        # 7.
        if index >= checkpoint.size:
            if proof is not None:
                raise LogVerificationFailed(
                    f"entry {index} comes with a proof but lies beyond the checkpoint of "
                    f"{checkpoint.size} entries",
                    code="log_bad_response",
                    index=index,
                )
            out.append(entry)  # pending: the next checkpoint will cover it
            continue
        if proof is None:
            raise LogVerificationFailed(
                f"entry {index} ({entry.type}{_by(entry)}) is inside the checkpoint of "
                f"{checkpoint.size} entries but came without an inclusion proof",
                code="log_missing_proof",
                index=index,
            )
        try:
            verify_inclusion(leaf_hash(body), index, checkpoint.size, proof, checkpoint.root_hash)
        except ProofError as exc:
            raise LogVerificationFailed(
                f"entry {index} ({entry.type}{_by(entry)}) is not in the log's signed tree of "
                f"{checkpoint.size} entries: {exc.message}. The server showed you an entry "
                "the log does not hold, or a broken proof.",
                code="log_not_included",
                index=index,
            ) from exc
        witnessed = witnessed_size is not None and index < witnessed_size
        out.append(replace(entry, verified=True, witnessed=witnessed))
    return out


def _by(entry: LogEntry) -> str:
    return f" by {entry.partner}" if entry.partner else ""
