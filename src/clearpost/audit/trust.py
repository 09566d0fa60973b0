"""Which log key to trust, and opening a checkpoint with it.

The first time an auditor or witness meets a log it may take the key the log publishes
(``GET /v1/log/key``) on trust — the state file then pins it, and every later
checkpoint must verify under that same key. Passing ``--vkey`` skips that first leap.
"""

from __future__ import annotations

from collections.abc import Sequence

from clearpost.audit.errors import BadSignature, LogUnavailable, StateError
from clearpost.audit.http import LogClient
from clearpost.audit.state import LogPin
from clearpost.core.tlog import (
    Checkpoint,
    CheckpointError,
    CosignatureVerifier,
    KeyFormatError,
    Note,
    NoteError,
    NoteSignatureError,
    NoteVerifier,
    UnverifiedNoteError,
    Verifier,
    open_checkpoint,
)

__all__ = ["log_verifier", "open_log_checkpoint", "resolve_pin"]


def log_verifier(pin: LogPin) -> Verifier:
    """The note verifier of a pinned log key."""
    return Verifier.from_vkey(pin.vkey)


async def resolve_pin(
    client: LogClient, *, origin: str | None, vkey: str | None, pinned: LogPin | None
) -> tuple[LogPin, bool]:
    """The log to trust, and whether it was taken on first use.

    1. A pin from the state file wins; flags that contradict it are a ``StateError``.
    2. Else a ``vkey`` given by the caller (origin defaults to the key's name).
    3. Else trust on first use: the origin and key the log publishes, which must match a
       given ``origin``.
    """
    # 1.
    if pinned is not None:
        if (vkey is not None and vkey != pinned.vkey) or (
            origin is not None and origin != pinned.origin
        ):
            raise StateError(
                f"the state file pins log {pinned.origin!r} with key {pinned.vkey}; "
                "the origin or key given does not match it"
            )
        return pinned, False
    # 2.
    if vkey is not None:
        return LogPin(origin or Verifier.from_vkey(vkey).name, vkey), False
    # 3.
    info = await client.key()
    try:
        Verifier.from_vkey(info.vkey)
    except KeyFormatError as exc:
        raise LogUnavailable(f"the log publishes a malformed key: {exc.message}") from exc
    if origin is not None and info.origin != origin:
        raise BadSignature(f"the log at {client.url} is {info.origin!r}, not {origin!r}")
    return LogPin(info.origin, info.vkey), True


def open_log_checkpoint(
    note: str, pin: LogPin, witnesses: Sequence[CosignatureVerifier] = ()
) -> tuple[Checkpoint, Note]:
    """Open a checkpoint note that must carry a valid signature by the pinned log key.

    Cosignatures by the given ``witnesses`` are verified too (an invalid one rejects the
    note); other signature lines are left unverified in ``Note.unverified``.
    """
    log = log_verifier(pin)
    verifiers: list[NoteVerifier] = [log, *witnesses]
    try:
        checkpoint, opened = open_checkpoint(note, verifiers, origin=pin.origin)
    except UnverifiedNoteError as exc:
        raise BadSignature(
            f"the checkpoint is not signed by the log key {pin.vkey}: {exc.message}"
        ) from exc
    except NoteSignatureError as exc:
        raise BadSignature(f"the checkpoint carries an invalid signature: {exc.message}") from exc
    except CheckpointError as exc:
        raise BadSignature(f"the checkpoint is not one of {pin.origin!r}: {exc.message}") from exc
    except NoteError as exc:
        raise LogUnavailable(f"the checkpoint is not a signed note: {exc.message}") from exc
    if not any((s.name, s.key_id) == (log.name, log.key_id) for s in opened.signatures):
        raise BadSignature(f"the checkpoint is not signed by the log key {pin.vkey}")
    return checkpoint, opened
