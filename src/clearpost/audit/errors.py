"""What can go wrong in an audit, each kind with its own exit code.

An audit either succeeds or ends in exactly one ``AuditFailure``. The kinds are
distinct because they mean different things to whoever runs the auditor: a log that
cannot be reached (try again) is not a log whose entries were changed (the operator
rewrote data) or a log that showed two histories (the operator lied to someone).
Failures that prove misbehaviour carry the evidence: the signed checkpoints involved.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from clearpost.core.errors import ClearpostError


class ExitCode(IntEnum):
    """Process exit codes of ``clearpost audit`` and ``clearpost witness`` (documented)."""

    OK = 0
    ERROR = 1
    """Unexpected internal error (a bug); the message says what happened."""
    USAGE = 2
    """Bad command-line flags (typer's own usage errors use 2 as well)."""
    UNAVAILABLE = 3
    """The log could not be reached, or answered something that is not the protocol."""
    BAD_SIGNATURE = 4
    """The checkpoint is not validly signed by the trusted log key, or names another log."""
    ENTRY_MISMATCH = 5
    """The entries do not hash to the signed root: an entry or tree node was changed."""
    MISSING_ENTRIES = 6
    """The log does not serve entries that its signed checkpoint covers."""
    ROLLBACK = 7
    """The log's checkpoint is smaller than one verified or cosigned before."""
    FORK = 8
    """The log's history is inconsistent with a checkpoint verified or cosigned before."""
    BAD_PROOF = 9
    """The data is consistent but the log serves an inclusion or consistency proof that fails."""
    STATE = 10
    """The state file cannot be read, is locked, or belongs to another log or key."""
    REJECTED = 11
    """The log refused the witness's cosignature (for example: witness not configured)."""
    NOT_WITNESSED = 12
    """No checkpoint the log serves carries a valid cosignature of every required witness."""
    KEYDIR = 13
    """A key-directory epoch is not its predecessor plus new leaves (a version changed)."""


class AuditFailure(ClearpostError):
    """Root of audit and witness failures; ``exit_code`` is what the CLI exits with."""

    code = "audit_failed"
    exit_code = ExitCode.ERROR
    title = "audit failed"

    def __init__(self, message: str, *, evidence: tuple[str, ...] = (), **extra: Any) -> None:
        super().__init__(message, **extra)
        self.evidence = evidence
        """Signed notes that prove what the log showed (for forks and rollbacks)."""


class LogUnavailable(AuditFailure):
    """Network failure, a 5xx, or a response that does not follow the log API."""

    code = "log_unavailable"
    exit_code = ExitCode.UNAVAILABLE
    title = "log unavailable"


class ServerRefused(LogUnavailable):
    """The log answered a request with a 4xx problem; ``status`` and ``problem`` say which."""

    code = "log_refused"

    def __init__(self, message: str, *, status: int, problem: str) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem


class BadSignature(AuditFailure):
    code = "bad_signature"
    exit_code = ExitCode.BAD_SIGNATURE
    title = "bad checkpoint signature"


class EntryMismatch(AuditFailure):
    """``index`` is the changed entry when it could be pinned down, else None."""

    code = "entry_mismatch"
    exit_code = ExitCode.ENTRY_MISMATCH
    title = "entries do not match the signed root"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class MissingEntries(AuditFailure):
    """``index`` is the first entry found missing, when it could be pinned down."""

    code = "missing_entries"
    exit_code = ExitCode.MISSING_ENTRIES
    title = "entries missing"

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class Rollback(AuditFailure):
    code = "rollback"
    exit_code = ExitCode.ROLLBACK
    title = "log rolled back"


class Fork(AuditFailure):
    code = "fork"
    exit_code = ExitCode.FORK
    title = "forked history"


class BadProof(AuditFailure):
    code = "bad_proof"
    exit_code = ExitCode.BAD_PROOF
    title = "bad proof"


class StateError(AuditFailure):
    code = "bad_state"
    exit_code = ExitCode.STATE
    title = "state file problem"


class NotWitnessed(AuditFailure):
    """``audit verify --witness W``: the log serves no checkpoint that W cosigned."""

    code = "not_witnessed"
    exit_code = ExitCode.NOT_WITNESSED
    title = "no witnessed checkpoint"


class CosignatureRejected(AuditFailure):
    code = "cosignature_rejected"
    exit_code = ExitCode.REJECTED
    title = "cosignature rejected"


class KeyDirTransitionInvalid(AuditFailure):
    """A key-directory epoch in the log does not follow from the one before it: an existing
    version was changed or removed, an epoch is missing, or its update proof fails."""

    code = "keydir_transition_invalid"
    exit_code = ExitCode.KEYDIR
    title = "key directory epoch refused"
