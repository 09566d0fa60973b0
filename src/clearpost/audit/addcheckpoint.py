"""The witness side of C2SP tlog-witness: ``POST <prefix>/add-checkpoint``.

A log pushes each new checkpoint with a consistency proof from the size this witness
cosigned last; the witness answers with its cosignature, or with the status the spec
gives for each refusal (404 unknown origin, 403 no valid log signature, 400 old size
above the checkpoint's, 409 old size not the one cosigned last — body ``<size>\\n`` of
type ``text/x.tlog.size`` — or same size with another root, 422 a proof that does not
verify). It keeps the same state as the pull-mode witness (``Witness.step``), so a
witness can be fed both ways and still never cosigns two histories: checking the old
size and saving the new checkpoint happen under one lock, and the state is saved before
the cosignature is returned.

No web framework here: ``handle`` takes the body and returns (status, content type,
body); ``cli/witness.py`` serves it over HTTP.
"""

from __future__ import annotations

import asyncio
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from clearpost.audit.state import LogPin, WitnessState, save_json
from clearpost.audit.trust import log_verifier
from clearpost.core.tlog import (
    Checkpoint,
    CheckpointError,
    Cosigner,
    NoteError,
    NoteSignatureError,
    ProofError,
    cosign,
    open_checkpoint,
    parse_note_unverified,
    verify_consistency,
)
from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.note import MAX_NOTE_BYTES

__all__ = ["MAX_BODY", "AddCheckpoint", "Answer"]

MAX_PROOF_LINES = 63
MAX_BODY = MAX_NOTE_BYTES + 64 * 50  # a note and 63 proof lines (with room to spare)
SIZE_TYPE = "text/x.tlog.size"
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def _refuse(status: int, why: str) -> Answer:
    return Answer(status, TEXT, why.encode() + b"\n")


class AddCheckpoint:
    """One witness key, one log: answers ``add-checkpoint`` requests."""

    def __init__(
        self,
        cosigner: Cosigner,
        pin: LogPin,
        state: WitnessState | None,
        state_path: Path,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cosigner, self.pin, self.state, self.state_path = cosigner, pin, state, state_path
        self.clock = clock
        self._lock = asyncio.Lock()

    async def handle(self, body: bytes) -> Answer:
        """Check one request and cosign, or refuse with the spec's status."""
        if len(body) > MAX_BODY:
            return _refuse(400, "request body too large")
        parsed = _parse(body)
        if isinstance(parsed, Answer):
            return parsed
        old, proof, note = parsed
        try:
            text, _ = parse_note_unverified(note)
        except NoteError as exc:
            return _refuse(400, f"not a signed note: {exc.message}")
        if text.split("\n", 1)[0] != self.pin.origin:
            return _refuse(404, "unknown log origin")
        try:
            checkpoint, _ = open_checkpoint(note, [log_verifier(self.pin)], origin=self.pin.origin)
        except (NoteError, NoteSignatureError, CheckpointError) as exc:
            return _refuse(403, f"no valid signature by the log's key: {exc.message}")
        if old > checkpoint.size:
            return _refuse(400, "old size is larger than the checkpoint's")
        async with self._lock:  # check the old size and record the new one atomically
            last = self.state
            cosigned = last.checkpoint if last is not None else None
            if old != (cosigned.size if cosigned else 0):
                size = cosigned.size if cosigned else 0
                return Answer(409, SIZE_TYPE, f"{size}\n".encode())
            if cosigned is not None and old == checkpoint.size:
                if checkpoint.root_hash != cosigned.root_hash:
                    return _refuse(409, "a different tree of the size cosigned last")
                if proof:
                    return _refuse(422, "a proof between equal sizes must be empty")
            elif cosigned is None:
                if proof:
                    return _refuse(422, "the proof from size 0 must be empty")
            else:
                try:
                    verify_consistency(
                        old, checkpoint.size, cosigned.root_hash, checkpoint.root_hash, proof
                    )
                except ProofError as exc:
                    return _refuse(422, f"the consistency proof does not verify: {exc.message}")
            line = self._cosign(checkpoint, note, last)
        return Answer(200, TEXT, line.encode())

    def _cosign(self, checkpoint: Checkpoint, note: str, last: WitnessState | None) -> str:
        timestamp = int(self.clock())
        if last is not None:
            timestamp = max(timestamp, int.from_bytes(last.cosignature.signature[:8], "big"))
        if last is not None and last.checkpoint == checkpoint:
            signature = last.cosignature  # the same checkpoint again: the same answer
        else:
            signature = cosign(checkpoint.to_text(), self.cosigner, timestamp)
            text, sigs = parse_note_unverified(note)
            log_name = log_verifier(self.pin).name
            log_note = text + "\n" + "".join(s.to_line() for s in sigs if s.name == log_name)
            state = WitnessState(
                self.pin, self.cosigner.vkey, log_note, checkpoint, signature, "", True
            )
            save_json(self.state_path, state.to_json())  # before answering
            self.state = state
        return signature.to_line()


def _parse(body: bytes) -> tuple[int, list[bytes], str] | Answer:
    """``old N``, proof lines, an empty line, then the checkpoint note."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _refuse(400, "the body is not UTF-8")
    head, sep, note = text.partition("\n\n")
    if not sep:
        return _refuse(400, "no empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    digits = first.removeprefix("old ")
    if (
        not first.startswith("old ")
        or not (digits.isascii() and digits.isdigit())
        or (digits != "0" and digits.startswith("0"))
        or len(digits) > 20
    ):
        return _refuse(400, "the first line must be 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        return _refuse(400, f"at most {MAX_PROOF_LINES} proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = binascii.a2b_base64(line, strict_mode=True)
        except (binascii.Error, ValueError):
            return _refuse(400, "a proof line is not base64")
        if len(h) != HASH_SIZE:
            return _refuse(400, "a proof line is not a 32-byte hash")
        proof.append(h)
    return int(digits), proof, note
