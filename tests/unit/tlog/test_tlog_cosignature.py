"""C2SP tlog-cosignature (Ed25519 cosignature/v1): layout, known answers, verification."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from clearpost.core.errors import InvalidInput
from clearpost.core.tlog import (
    Checkpoint,
    CheckpointError,
    CosignatureVerifier,
    Cosigner,
    KeyFormatError,
    NoteSignature,
    NoteSignatureError,
    Signer,
    Verifier,
    cosign,
    cosigned_message,
    open_checkpoint,
    open_note,
    sign_note,
    unverified_timestamp,
    verifier_from_vkey,
    verify_cosignature,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "tlog"
DATA: dict[str, Any] = json.loads((VECTORS / "signed_note.json").read_text(encoding="utf-8"))
SPEC = DATA["c2sp_checkpoint"]
KAT = DATA["openssl_cosignature_kat"]
TEXT: str = SPEC["text"]


def test_signed_message_is_the_spec_example() -> None:
    assert cosigned_message(TEXT, 1679315147) == SPEC["cosigned_message_example"].encode()


def test_spec_cosignature_line_carries_its_timestamp() -> None:
    sig = NoteSignature.from_line(SPEC["cosignature_line"])
    assert sig.name == "witness.example.com/w1"
    assert len(sig.signature) == 8 + 64
    assert unverified_timestamp(sig) == SPEC["cosignature_timestamp"]


def test_plain_note_signature_is_not_a_cosignature() -> None:
    with pytest.raises(NoteSignatureError):
        unverified_timestamp(NoteSignature.from_line(SPEC["log_sig_line"]))


def test_openssl_known_answer() -> None:
    witness = Cosigner.from_seed(KAT["witness_name"], bytes.fromhex(KAT["seed_hex"]))
    assert witness.public_key.hex() == KAT["public_key_hex"]
    assert witness.vkey == KAT["witness_vkey"]
    line = cosign(KAT["checkpoint_text"], witness, KAT["timestamp"]).to_line()
    assert line == KAT["cosignature_line"]
    verifier = CosignatureVerifier.from_vkey(KAT["witness_vkey"])
    sig = NoteSignature.from_line(line)
    assert verify_cosignature(KAT["checkpoint_text"], sig, verifier) == KAT["timestamp"]


def test_openssl_known_answer_for_the_log_signature_and_a_whole_note() -> None:
    log = Signer.from_seed(KAT["log_name"], bytes.fromhex(KAT["seed_hex"]))
    assert f"{log.key_id:08x}" == KAT["log_key_id_hex"]
    signed = sign_note(KAT["checkpoint_text"], [log])
    assert signed == (KAT["checkpoint_text"] + "\n" + KAT["log_sig_line"]).encode()
    cosigned = signed + KAT["cosignature_line"].encode()
    verifiers = [verifier_from_vkey(log.vkey), verifier_from_vkey(KAT["witness_vkey"])]
    checkpoint, note = open_checkpoint(cosigned, verifiers, origin=KAT["log_name"])
    assert checkpoint.size == 20852163
    assert [s.name for s in note.signatures] == [KAT["log_name"], KAT["witness_name"]]


def test_key_ids_differ_by_signature_type() -> None:
    seed = bytes.fromhex(KAT["seed_hex"])
    assert Cosigner.from_seed("w", seed).key_id != Signer.from_seed("w", seed).key_id


WITNESS = Cosigner.from_seed("witness.example/w1", bytes(range(32)))
LOG = Signer.from_seed("example.com/log", bytes(range(1, 33)))
CHECKPOINT = Checkpoint("example.com/log", 7, bytes(range(32))).to_text()


def test_cosign_and_verify_round_trip() -> None:
    sig = cosign(CHECKPOINT, WITNESS, 1_700_000_000)
    assert verify_cosignature(CHECKPOINT, sig, WITNESS.verifier()) == 1_700_000_000
    assert verify_cosignature(CHECKPOINT, sig, WITNESS.verifier(), now=1_700_000_000) > 0


def test_rejections() -> None:
    sig = cosign(CHECKPOINT, WITNESS, 1_700_000_000)
    verifier = WITNESS.verifier()
    other = Checkpoint("example.com/log", 8, bytes(range(32))).to_text()
    with pytest.raises(NoteSignatureError):  # another checkpoint
        verify_cosignature(other, sig, verifier)
    with pytest.raises(NoteSignatureError):  # the timestamp changed
        moved = (1_700_000_001).to_bytes(8, "big") + sig.signature[8:]
        verify_cosignature(CHECKPOINT, NoteSignature(sig.name, sig.key_id, moved), verifier)
    with pytest.raises(NoteSignatureError):  # in the future
        verify_cosignature(CHECKPOINT, sig, verifier, now=1_699_999_999)
    with pytest.raises(NoteSignatureError):  # another witness's key
        verify_cosignature(CHECKPOINT, sig, Cosigner.generate(WITNESS.name).verifier())
    with pytest.raises(NoteSignatureError):  # right name, wrong key id
        verify_cosignature(CHECKPOINT, NoteSignature(sig.name, 0, sig.signature), verifier)
    with pytest.raises(NoteSignatureError):  # truncated
        short = NoteSignature(sig.name, sig.key_id, sig.signature[:-1])
        verify_cosignature(CHECKPOINT, short, verifier)
    too_late = (2**63).to_bytes(8, "big") + sig.signature[8:]
    with pytest.raises(NoteSignatureError):
        verify_cosignature(CHECKPOINT, NoteSignature(sig.name, sig.key_id, too_late), verifier)


def test_cosign_refuses_what_is_not_a_checkpoint_or_a_valid_time() -> None:
    with pytest.raises(CheckpointError):
        cosign("just some text\n", WITNESS, 1)
    for bad in (-1, 2**63, True):
        with pytest.raises(InvalidInput):
            cosign(CHECKPOINT, WITNESS, bad)
    cosign(CHECKPOINT, WITNESS, 2**63 - 1)
    cosign(CHECKPOINT, WITNESS, 0)


def test_a_plain_ed25519_key_cannot_stand_in_for_a_cosignature_key() -> None:
    signed = sign_note(CHECKPOINT, [LOG, WITNESS_AS_NOTE_SIGNER])
    plain = Verifier(WITNESS.name, WITNESS.public_key)  # type 0x01, so another key id
    note = open_note(signed, [LOG.verifier(), plain])
    assert [s.name for s in note.signatures] == [LOG.name]  # the cosignature stays unverified


class _WitnessSigner:
    """Adapts a Cosigner to NoteSigner at a fixed time, as a witness service would."""

    name = WITNESS.name
    key_id = WITNESS.key_id

    def sign(self, text: bytes) -> bytes:
        return WITNESS.sign_at(text.decode(), 1_700_000_000)


WITNESS_AS_NOTE_SIGNER = _WitnessSigner()


def test_open_note_verifies_log_signature_and_cosignatures_together() -> None:
    log_signed = sign_note(CHECKPOINT, [LOG])
    line = cosign(CHECKPOINT, WITNESS, 1_700_000_000).to_line().encode()
    cosigned = log_signed + line
    checkpoint, note = open_checkpoint(
        cosigned, [LOG.verifier(), WITNESS.verifier()], origin="example.com/log"
    )
    assert checkpoint.size == 7
    assert [s.name for s in note.signatures] == [LOG.name, WITNESS.name]
    sig = NoteSignature.from_line(line.decode())
    bad = sig.signature[:-1] + bytes([sig.signature[-1] ^ 1])
    forged = log_signed + NoteSignature(sig.name, sig.key_id, bad).to_line().encode()
    with pytest.raises(NoteSignatureError):
        open_checkpoint(forged, [LOG.verifier(), WITNESS.verifier()], origin="example.com/log")


def test_verifier_keys_by_type() -> None:
    assert isinstance(verifier_from_vkey(WITNESS.vkey), CosignatureVerifier)
    assert isinstance(verifier_from_vkey(LOG.vkey), Verifier)
    with pytest.raises(KeyFormatError):
        CosignatureVerifier.from_vkey(LOG.vkey)
    with pytest.raises(KeyFormatError):
        Verifier.from_vkey(WITNESS.vkey)
    assert CosignatureVerifier.from_vkey(WITNESS.vkey).public_key == WITNESS.public_key
