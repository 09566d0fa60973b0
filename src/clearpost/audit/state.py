"""What an auditor or witness remembers between runs, in a small JSON file.

The file is written atomically (a temporary file in the same directory, fsynced, then
renamed over the old one, then the directory fsynced), so a crash leaves either the old
state or the new one, never half of each. A witness writes its state *before* it
publishes a cosignature: forgetting a cosignature it gave would let it cosign a
conflicting checkpoint later.

Both states pin the log (origin and verifier key) the first time they see it and keep
the last checkpoint as the signed note, so that a later contradiction can be shown with
both signed notes as evidence.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from clearpost.audit.errors import StateError
from clearpost.core.errors import InvalidInput
from clearpost.core.tlog import (
    Checkpoint,
    CompactRange,
    NoteSignature,
    Verifier,
    open_checkpoint,
)

__all__ = ["AuditState", "LogPin", "WitnessState", "load_json", "lock_state", "save_json"]

_AUDIT_KIND = "clearpost-audit-state"
_WITNESS_KIND = "clearpost-witness-state"
_VERSION = 1
_MAX_STATE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class LogPin:
    """The log an auditor or witness trusts: its origin line and its note verifier key."""

    origin: str
    vkey: str


@dataclass(frozen=True, slots=True)
class AuditState:
    """An auditor's memory: the last checkpoint it verified and the tree's right edge."""

    log: LogPin
    note: str
    """The last verified checkpoint, as a signed note (log signature only)."""
    checkpoint: Checkpoint
    compact: CompactRange
    """Right edge of the verified tree: ``compact.size == checkpoint.size``."""
    server: str = ""
    verified_at: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": _AUDIT_KIND,
            "version": _VERSION,
            "origin": self.log.origin,
            "vkey": self.log.vkey,
            "server": self.server,
            "verified_at": self.verified_at,
            "checkpoint": self.note,
            "size": self.checkpoint.size,
            "root": _b64(self.checkpoint.root_hash),
            "compact_range": [_b64(h) for h in self.compact.hashes],
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> AuditState:
        fields = _fields(data, _AUDIT_KIND, path)
        try:
            log = LogPin(_str(fields, "origin"), _str(fields, "vkey"))
            checkpoint = _checkpoint(fields, log)
            compact = CompactRange.from_hashes(
                checkpoint.size, [_unb64(h) for h in _list(fields, "compact_range")]
            )
        except (InvalidInput, KeyError, TypeError, ValueError) as exc:
            raise StateError(f"the audit state in {path} is damaged: {exc}") from exc
        if compact.root() != checkpoint.root_hash:
            raise StateError(
                f"the audit state in {path} is damaged: its compact range "
                "does not hash to its checkpoint root"
            )
        return cls(
            log,
            _str(fields, "checkpoint"),
            checkpoint,
            compact,
            str(fields.get("server", "")),
            int(fields.get("verified_at", 0)),
        )


@dataclass(frozen=True, slots=True)
class WitnessState:
    """A witness's memory: the latest checkpoint it cosigned, and its cosignature."""

    log: LogPin
    witness_vkey: str
    note: str
    """The cosigned checkpoint as the log signed it."""
    checkpoint: Checkpoint
    cosignature: NoteSignature
    server: str = ""
    posted: bool = False
    """True once the log accepted (or already had) this cosignature."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": _WITNESS_KIND,
            "version": _VERSION,
            "origin": self.log.origin,
            "vkey": self.log.vkey,
            "witness_vkey": self.witness_vkey,
            "server": self.server,
            "checkpoint": self.note,
            "size": self.checkpoint.size,
            "root": _b64(self.checkpoint.root_hash),
            "cosignature": self.cosignature.to_line().removesuffix("\n"),
            "posted": self.posted,
        }

    @classmethod
    def from_json(cls, data: Any, path: Path) -> WitnessState:
        fields = _fields(data, _WITNESS_KIND, path)
        try:
            log = LogPin(_str(fields, "origin"), _str(fields, "vkey"))
            checkpoint = _checkpoint(fields, log)
            cosignature = NoteSignature.from_line(_str(fields, "cosignature"))
        except (InvalidInput, KeyError, TypeError, ValueError) as exc:
            raise StateError(f"the witness state in {path} is damaged: {exc}") from exc
        return cls(
            log,
            _str(fields, "witness_vkey"),
            _str(fields, "checkpoint"),
            checkpoint,
            cosignature,
            str(fields.get("server", "")),
            bool(fields.get("posted", False)),
        )


def load_json(path: Path) -> Any | None:
    """The parsed JSON in ``path``, or None when the file does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc.strerror}") from exc
    if len(raw) > _MAX_STATE_BYTES:
        raise StateError(f"the state file {path} is too large to be a state file")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateError(f"the state file {path} is not JSON") from exc


def save_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` atomically and durably (mode 0600)."""
    payload = orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise StateError(f"cannot write the state file {path}: {exc.strerror}") from exc


@contextlib.contextmanager
def lock_state(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` so two processes never share a state."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lock file {lock_path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"another process is using the state file {path} (lock {lock_path})"
            ) from None
        yield
    finally:
        os.close(fd)


def _fields(data: Any, kind: str, path: Path) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise StateError(f"{path} is not a {kind} file")
    if data.get("version") != _VERSION:
        raise StateError(f"{path} has state version {data.get('version')!r}; want {_VERSION}")
    return data


def _checkpoint(fields: dict[str, Any], log: LogPin) -> Checkpoint:
    # Re-open the note with the pinned key, and cross-check the plain fields with it.
    checkpoint, _ = open_checkpoint(
        _str(fields, "checkpoint"), [Verifier.from_vkey(log.vkey)], origin=log.origin
    )
    if checkpoint.size != fields.get("size") or _b64(checkpoint.root_hash) != fields.get("root"):
        raise ValueError("its checkpoint does not match its size or root")
    return checkpoint


def _str(fields: dict[str, Any], name: str) -> str:
    value = fields[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _list(fields: dict[str, Any], name: str) -> list[Any]:
    value = fields[name]
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list")
    return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("hashes must be base64 strings")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("malformed base64") from exc
