"""Auditing and witnessing a Clearpost transparency log from the outside.

This package is what an outside verifier runs, so it depends on ``clearpost.core``,
``httpx`` and ``httptools`` only — never on the server or its storage. The SDK reuses it
to verify the log its own client talks to.

- ``http``: ``LogClient``, the public log API over an injectable ``httpx.AsyncClient`` or,
  given the server's URL, over ``rawget``'s keep-alive connections (no httpx loaded).
- ``state``: what an auditor or witness remembers, in JSON files written atomically.
- ``trust``: which log key to trust (pinned, given, or trusted on first use).
- ``tree``: the auditor's partial copy of the tree, and pinning down a changed entry.
- ``auditor``: ``Auditor.verify`` / ``audit_log`` — signature, entries, consistency.
- ``tileaudit``: the whole tree read from tiles, every stored node checked.
- ``rawget``: cheap keep-alive GETs for the tile audit's many small requests.
- ``tilehelper``: helper processes that check full tiles alongside a tile audit.
- ``addcheckpoint``: the witness side of C2SP tlog-witness (``add-checkpoint``).
- ``witness``: ``Witness.step`` — verify consistency, cosign, publish; refuse forks.
- ``errors``: one failure class per kind, each with its process exit code.
"""

from clearpost.audit.auditor import Auditor, AuditReport, Progress, Verified, audit_log
from clearpost.audit.errors import (
    AuditFailure,
    BadProof,
    BadSignature,
    CosignatureRejected,
    EntryMismatch,
    ExitCode,
    Fork,
    LogUnavailable,
    MissingEntries,
    NotWitnessed,
    Rollback,
    ServerRefused,
    StateError,
)
from clearpost.audit.http import LogClient, LogKeyInfo
from clearpost.audit.state import AuditState, LogPin, WitnessState
from clearpost.audit.witness import (
    Outcome,
    Witness,
    WitnessResult,
    generate_witness_key,
    load_witness_key,
    open_witness,
    write_witness_key,
)

__all__ = [
    "AuditFailure",
    "AuditReport",
    "AuditState",
    "Auditor",
    "BadProof",
    "BadSignature",
    "CosignatureRejected",
    "EntryMismatch",
    "ExitCode",
    "Fork",
    "LogClient",
    "LogKeyInfo",
    "LogPin",
    "LogUnavailable",
    "MissingEntries",
    "NotWitnessed",
    "Outcome",
    "Progress",
    "Rollback",
    "ServerRefused",
    "StateError",
    "Verified",
    "Witness",
    "WitnessResult",
    "WitnessState",
    "audit_log",
    "generate_witness_key",
    "load_witness_key",
    "open_witness",
    "write_witness_key",
]
