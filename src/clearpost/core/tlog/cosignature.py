"""C2SP tlog-cosignature, Ed25519 ``cosignature/v1`` (c2sp.org/tlog-cosignature).

A witness (cosigner) states that, as of a POSIX time, the checkpoint is the largest
consistent tree head it has seen for that log. It signs
``"cosignature/v1\\ntime <t>\\n" || checkpoint note text`` with Ed25519, and the note
signature line carries ``key id (4) || t (8, big-endian) || signature (64)``. The key id
uses signature type 0x04. Because the message does not name the cosigner, one Ed25519
key must serve one cosigner only.
"""

from __future__ import annotations

import secrets

from clearpost.core.errors import InvalidInput
from clearpost.core.tlog.checkpoint import Checkpoint
from clearpost.core.tlog.errors import KeyFormatError, NoteSignatureError
from clearpost.core.tlog.keys import (
    ED25519_SIGNATURE_SIZE,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Ed25519Seed,
    ed25519_public_key,
    ed25519_verify,
    format_vkey,
    is_valid_key_name,
    key_id,
    parse_vkey,
)
from clearpost.core.tlog.note import NoteSignature, NoteVerifier, Verifier

MAX_TIMESTAMP = 2**63 - 1
"""Cosignature timestamps must not exceed this (the spec's bound)."""

COSIGNATURE_SIZE = 8 + ED25519_SIGNATURE_SIZE
"""Bytes after the key id: timestamp then Ed25519 signature."""


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The exact bytes a cosigner signs for ``checkpoint_text`` at ``timestamp``."""
    _check_timestamp(timestamp)
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint_text}".encode()


class CosignatureVerifier:
    """A witness's public key for cosignature/v1; usable as a ``NoteVerifier``."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError("key name is empty or has spaces, '+' or control characters")
        self._key = ed25519_public_key(public_key)
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, SIG_TYPE_COSIGNATURE_V1, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``name+hexid+base64(0x04 || public key)``; raises ``KeyFormatError``."""
        parts = parse_vkey(vkey)
        if parts.sig_type != SIG_TYPE_COSIGNATURE_V1:
            raise KeyFormatError("not a cosignature/v1 verifier key (type 0x04)")
        return cls(parts.name, parts.material)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, SIG_TYPE_COSIGNATURE_V1, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True if ``signature`` is ``timestamp || Ed25519 sig`` over the cosigned message."""
        if len(signature) != COSIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > MAX_TIMESTAMP:
            return False
        message = b"cosignature/v1\ntime %d\n" % timestamp + text
        return ed25519_verify(self._key, message, signature[8:])

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.vkey!r})"


class Cosigner:
    """A witness's private key for cosignature/v1. Holds a secret seed."""

    __slots__ = ("_seed", "key_id", "name")

    def __init__(self, name: str, seed: Ed25519Seed) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError("key name is empty or has spaces, '+' or control characters")
        self.name = name
        self._seed = seed
        self.key_id = key_id(name, SIG_TYPE_COSIGNATURE_V1, seed.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Cosigner:
        return cls(name, Ed25519Seed(seed))

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        return cls.from_seed(name, secrets.token_bytes(32))

    @property
    def public_key(self) -> bytes:
        return self._seed.public_key

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return self.verifier().vkey

    def sign_at(self, checkpoint_text: str, timestamp: int) -> bytes:
        """``timestamp (8 bytes) || Ed25519 signature`` over the cosigned message."""
        signature = self._seed.sign(cosigned_message(checkpoint_text, timestamp))
        return timestamp.to_bytes(8, "big") + signature

    def __repr__(self) -> str:
        return f"Cosigner({self.vkey!r})"


def cosign(checkpoint_text: str, cosigner: Cosigner, timestamp: int) -> NoteSignature:
    """Cosign a checkpoint note text at POSIX ``timestamp``; returns the signature line.

    The text must parse as a checkpoint (raises ``CheckpointError``); checking that it is
    consistent with what the witness saw before is the caller's duty.
    """
    Checkpoint.parse(checkpoint_text)
    return NoteSignature(
        cosigner.name, cosigner.key_id, cosigner.sign_at(checkpoint_text, timestamp)
    )


def unverified_timestamp(signature: NoteSignature) -> int:
    """The timestamp a cosignature line claims, unchecked. Raises ``NoteSignatureError``."""
    if len(signature.signature) != COSIGNATURE_SIZE:
        raise NoteSignatureError("not a cosignature/v1 signature (wrong length)")
    return int.from_bytes(signature.signature[:8], "big")


def verify_cosignature(
    checkpoint_text: str,
    signature: NoteSignature,
    verifier: CosignatureVerifier,
    *,
    now: int | None = None,
) -> int:
    """Verify one cosignature line on a checkpoint text; return its timestamp.

    1. The line's name and key id must be the verifier's.
    2. The payload must be a timestamp (at most 2**63 - 1) and a 64-byte signature.
    3. The Ed25519 signature must verify over the cosigned message.
    4. When ``now`` is given, a timestamp after ``now`` is rejected.
    Raises ``NoteSignatureError`` on any failure.
    """
    # 1.
    if (signature.name, signature.key_id) != (verifier.name, verifier.key_id):
        raise NoteSignatureError("cosignature is not from this witness key")
    # 2.
    timestamp = unverified_timestamp(signature)
    if timestamp > MAX_TIMESTAMP:
        raise NoteSignatureError("cosignature timestamp exceeds 2**63 - 1")
    # 3.
    if not verifier.verify(checkpoint_text.encode(), signature.signature):
        raise NoteSignatureError(
            f"invalid cosignature for key {verifier.name}+{verifier.key_id:08x}"
        )
    # 4.
    if now is not None and timestamp > now:
        raise NoteSignatureError("cosignature timestamp is in the future")
    return timestamp


def verifier_from_vkey(vkey: str) -> NoteVerifier:
    """A note verifier for a vkey of type 0x01 (log key) or 0x04 (witness key)."""
    sig_type = parse_vkey(vkey).sig_type
    if sig_type == SIG_TYPE_ED25519:
        return Verifier.from_vkey(vkey)
    if sig_type == SIG_TYPE_COSIGNATURE_V1:
        return CosignatureVerifier.from_vkey(vkey)
    raise KeyFormatError("unsupported verifier key type (want 0x01 or 0x04)")


def _check_timestamp(timestamp: int) -> None:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise InvalidInput("cosignature timestamp must be an integer")
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise InvalidInput("cosignature timestamp must be between 0 and 2**63 - 1")
