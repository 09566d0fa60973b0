"""A witness: cosigns a log's checkpoints, and never two histories.

The witness remembers the latest checkpoint it cosigned. A newer checkpoint is cosigned
only after the log proves (RFC 9162 consistency proof) that it extends that one; a
checkpoint of the same size with another root, a smaller one, or one whose proof fails,
is refused — that refusal is the witness's whole value, so it is loud. The state is
saved before the cosignature is published, so a crash can never make the witness forget
something it signed. Cosignatures are C2SP tlog-cosignature ``cosignature/v1`` lines.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from clearpost.audit.errors import (
    CosignatureRejected,
    Fork,
    Rollback,
    ServerRefused,
    StateError,
)
from clearpost.audit.http import LogClient
from clearpost.audit.state import LogPin, WitnessState, load_json, save_json
from clearpost.audit.trust import open_log_checkpoint, resolve_pin
from clearpost.core.tlog import (
    Checkpoint,
    Cosigner,
    KeyFormatError,
    NoteSignature,
    ProofError,
    cosign,
    verify_consistency,
)
from clearpost.core.tlog.keys import SIG_TYPE_COSIGNATURE_V1, format_skey, parse_skey

__all__ = [
    "Outcome",
    "Witness",
    "WitnessResult",
    "generate_witness_key",
    "load_witness_key",
    "open_witness",
    "write_witness_key",
]


def generate_witness_key(name: str) -> tuple[Cosigner, str]:
    """A new witness key: the cosigner and its secret key string (``PRIVATE+KEY+...``)."""
    seed = secrets.token_bytes(32)
    cosigner = Cosigner.from_seed(name, seed)
    return cosigner, format_skey(name, cosigner.key_id, SIG_TYPE_COSIGNATURE_V1, seed)


def write_witness_key(path: Path, skey: str, *, overwrite: bool = False) -> None:
    """Write a secret key file readable by its owner only; never clobber one by accident."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise StateError(f"{path} exists; refusing to overwrite a witness key") from None
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as out:
        out.write(skey + "\n")
        out.flush()
        os.fsync(out.fileno())


def load_witness_key(path: Path) -> Cosigner:
    """Read a witness key file written by ``write_witness_key`` (or any C2SP skey of
    type 0x04). Errors name the file, never the key."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise StateError(f"cannot read the witness key {path}: {exc.strerror}") from exc
    try:
        parts = parse_skey(text)
        if parts.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise KeyFormatError("not a cosignature/v1 key (type 0x04)")
        cosigner = Cosigner.from_seed(parts.name, parts.material)
        if cosigner.key_id != parts.key_id:
            raise KeyFormatError("key id does not match the key")
    except KeyFormatError as exc:
        raise StateError(f"{path} is not a witness key: {exc.message}") from exc
    return cosigner


class Outcome(Enum):
    COSIGNED = "cosigned"
    """A new checkpoint was verified, cosigned and published."""
    UNCHANGED = "unchanged"
    """The log's checkpoint is the one cosigned before (its cosignature re-sent if needed)."""


@dataclass(frozen=True, slots=True)
class WitnessResult:
    outcome: Outcome
    checkpoint: Checkpoint
    previous_size: int | None
    posted: bool
    """Whether the log has accepted this witness's cosignature of ``checkpoint``."""


class Witness:
    """One witness for one log; ``step`` does one round of fetch, verify, cosign, post."""

    def __init__(
        self,
        client: LogClient,
        cosigner: Cosigner,
        pin: LogPin,
        state: WitnessState | None,
        state_path: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.cosigner, self.pin = client, cosigner, pin
        self.state, self.state_path, self.clock = state, state_path, clock

    async def step(self) -> WitnessResult:
        """Fetch the latest checkpoint and cosign it if, and only if, it is consistent.

        1. Fetch the checkpoint and open it with the pinned log key (``BadSignature``).
        2. Compare with the checkpoint cosigned last: a smaller one is a ``Rollback``, the
           same size with another root a ``Fork``; the same one needs no new cosignature
           (but is re-sent if the log does not have it yet).
        3. For a larger one, the log's consistency proof from the last cosigned checkpoint
           must verify; a failing or refused proof is a ``Fork``.
        4. Cosign it (timestamps never go backwards) and save the state before publishing.
        5. Publish the cosignature; a refusal is ``CosignatureRejected``.
        """
        # 1.
        note = await self.client.checkpoint()
        checkpoint, opened = open_log_checkpoint(note, self.pin)
        last = self.state
        # 2.
        if last is not None:
            old = last.checkpoint
            if checkpoint.size < old.size:
                raise Rollback(
                    f"REFUSING to cosign: the log shows {checkpoint.size} entries, but this "
                    f"witness already cosigned its checkpoint of {old.size} entries",
                    evidence=(last.note, note),
                )
            if checkpoint.size == old.size:
                if checkpoint.root_hash != old.root_hash:
                    raise Fork(
                        f"REFUSING to cosign: the log signed two different trees of "
                        f"{old.size} entries; this witness cosigned the other one",
                        evidence=(last.note, note),
                    )
                mine = (self.cosigner.name, self.cosigner.key_id)
                present = any((s.name, s.key_id) == mine for s in opened.unverified)
                if not present or not last.posted:
                    await self._publish(last)
                return WitnessResult(Outcome.UNCHANGED, checkpoint, old.size, True)
            # 3.
            if old.size > 0:
                try:
                    proof = await self.client.consistency(old.size, checkpoint.size)
                    verify_consistency(
                        old.size, checkpoint.size, old.root_hash, checkpoint.root_hash, proof
                    )
                except (ProofError, ServerRefused) as exc:
                    raise Fork(
                        f"REFUSING to cosign: the log cannot prove that its tree of "
                        f"{checkpoint.size} entries extends the tree of {old.size} entries "
                        f"this witness cosigned ({exc})",
                        evidence=(last.note, note),
                    ) from exc
        # 4.
        timestamp = int(self.clock())
        if last is not None:
            timestamp = max(timestamp, _timestamp(last.cosignature))
        line = cosign(checkpoint.to_text(), self.cosigner, timestamp)
        log_note = _log_signed_note(opened.signatures, checkpoint)
        state = WitnessState(
            self.pin, self.cosigner.vkey, log_note, checkpoint, line, self.client.url, False
        )
        self._save(state)
        # 5.
        await self._publish(state)
        return WitnessResult(
            Outcome.COSIGNED, checkpoint, last.checkpoint.size if last else None, True
        )

    async def _publish(self, state: WitnessState) -> None:
        try:
            await self.client.add_cosignature(
                state.checkpoint.size, state.cosignature.to_line().removesuffix("\n")
            )
        except ServerRefused as exc:
            raise CosignatureRejected(
                f"the log refused this witness's cosignature of size {state.checkpoint.size}: "
                f"{exc.message} (is {self.cosigner.vkey} in the server's log_witnesses?)"
            ) from exc
        self._save(replace(state, posted=True))

    def _save(self, state: WitnessState) -> None:
        save_json(self.state_path, state.to_json())
        self.state = state


async def open_witness(
    client: LogClient,
    cosigner: Cosigner,
    state_path: Path,
    *,
    origin: str | None = None,
    vkey: str | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Witness, bool]:
    """Load the witness state (checking it is this witness's) and pin the log; return the
    witness and whether the log key was trusted on first use."""
    state = None
    if (raw := load_json(state_path)) is not None:
        state = WitnessState.from_json(raw, state_path)
        if state.witness_vkey != cosigner.vkey:
            raise StateError(
                f"the state in {state_path} belongs to witness key {state.witness_vkey}, "
                f"not {cosigner.vkey}"
            )
    pin, tofu = await resolve_pin(
        client, origin=origin, vkey=vkey, pinned=state.log if state else None
    )
    return Witness(client, cosigner, pin, state, state_path, clock=clock), tofu


def _timestamp(line: NoteSignature) -> int:
    return int.from_bytes(line.signature[:8], "big")


def _log_signed_note(signatures: tuple[NoteSignature, ...], checkpoint: Checkpoint) -> str:
    # Keep the log's own signature(s) only: the evidence of what the log claimed.
    text = checkpoint.to_text()
    return text + "\n" + "".join(s.to_line() for s in signatures)
