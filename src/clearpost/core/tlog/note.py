"""C2SP signed notes (c2sp.org/signed-note): text signed by one or more named keys.

Format: the text (UTF-8, ending in a newline), a blank line, then one or more lines
``— <key name> <base64(4-byte key id || signature)>``. ``open_note`` is strict: it
rejects control characters, a missing separator, malformed signature lines, notes over
``MAX_NOTE_BYTES`` or with more than ``MAX_SIGNATURES`` signatures. Signatures from
keys the caller does not know are kept aside as unverified; every signature from a
known key must verify, and at least one must be present.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from clearpost.core.tlog.errors import (
    KeyFormatError,
    NoteError,
    NoteSignatureError,
    UnverifiedNoteError,
)
from clearpost.core.tlog.keys import (
    SIG_TYPE_ED25519,
    Ed25519Seed,
    b64decode_strict,
    b64encode,
    ed25519_public_key,
    ed25519_verify,
    format_skey,
    format_vkey,
    is_valid_key_name,
    key_id,
    parse_skey,
    parse_vkey,
)

MAX_NOTE_BYTES = 256 * 1024
"""Largest signed note we open or produce (room for 16 post-quantum signatures and more)."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry (the spec asks verifiers to accept at least 16)."""

_DASH = "\u2014 "


class NoteVerifier(Protocol):
    """A trusted key: ``open_note`` uses it for signature lines with its name and key id."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True if ``signature`` (without the key id) is valid for the note ``text``."""
        ...


class NoteSigner(Protocol):
    """A private key that signs note texts under ``name`` and ``key_id``."""

    @property
    def name(self) -> str: ...

    @property
    def key_id(self) -> int: ...

    def sign(self, text: bytes) -> bytes:
        """The signature (without the key id) over the note text."""
        ...


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: who signed (name, key id) and the signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def to_line(self) -> str:
        """The line as it appears in a note, newline included."""
        payload = self.key_id.to_bytes(4, "big") + self.signature
        return f"{_DASH}{self.name} {b64encode(payload)}\n"

    @classmethod
    def from_line(cls, line: str) -> NoteSignature:
        """Parse one line (with or without its final newline); raises ``NoteError``."""
        line = line.removesuffix("\n")
        if not line.startswith(_DASH):
            raise NoteError("a signature line starts with an em dash and a space")
        name, sep, b64 = line[len(_DASH) :].partition(" ")
        if not sep or not is_valid_key_name(name):
            raise NoteError("a signature line needs a valid key name and a space")
        raw = b64decode_strict(b64)
        if raw is None or len(raw) < 5:
            raise NoteError("a signature is canonical base64 of a key id and signature bytes")
        return cls(name, int.from_bytes(raw[:4], "big"), raw[4:])


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text, the signatures that verified, and those from unknown keys."""

    text: str
    signatures: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...] = ()

    def to_bytes(self) -> bytes:
        """The note again, verified signatures first."""
        return format_note(self.text, [*self.signatures, *self.unverified])


class Verifier:
    """An Ed25519 note verifier (signature type 0x01)."""

    __slots__ = ("_key", "key_id", "name", "public_key")

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError("key name is empty or has spaces, '+' or control characters")
        self._key = ed25519_public_key(public_key)
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, SIG_TYPE_ED25519, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse ``name+hexid+base64(0x01 || public key)``; raises ``KeyFormatError``."""
        parts = parse_vkey(vkey)
        if parts.sig_type != SIG_TYPE_ED25519:
            raise KeyFormatError("not an Ed25519 note verifier key (type 0x01)")
        return cls(parts.name, parts.material)

    @property
    def vkey(self) -> str:
        return format_vkey(self.name, SIG_TYPE_ED25519, self.public_key)

    def verify(self, text: bytes, signature: bytes) -> bool:
        return ed25519_verify(self._key, text, signature)

    def __repr__(self) -> str:
        return f"Verifier({self.vkey!r})"


class Signer:
    """An Ed25519 note signer (signature type 0x01). Holds a secret seed."""

    __slots__ = ("_seed", "key_id", "name")

    def __init__(self, name: str, seed: Ed25519Seed) -> None:
        if not is_valid_key_name(name):
            raise KeyFormatError("key name is empty or has spaces, '+' or control characters")
        self.name = name
        self._seed = seed
        self.key_id = key_id(name, SIG_TYPE_ED25519, seed.public_key)

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        return cls(name, Ed25519Seed(seed))

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls.from_seed(name, secrets.token_bytes(32))

    @classmethod
    def from_skey(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+name+hexid+base64(0x01 || seed)``, checking the key id."""
        parts = parse_skey(skey)
        if parts.sig_type != SIG_TYPE_ED25519:
            raise KeyFormatError("not an Ed25519 note signer key (type 0x01)")
        signer = cls.from_seed(parts.name, parts.material)
        if signer.key_id != parts.key_id:
            raise KeyFormatError("signer key id does not match its name and key")
        return signer

    @property
    def public_key(self) -> bytes:
        return self._seed.public_key

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        return self.verifier().vkey

    def reveal_skey(self) -> str:
        """The secret signer key string. Anyone holding it can sign as this key."""
        return format_skey(self.name, self.key_id, SIG_TYPE_ED25519, self._seed.reveal_seed())

    def sign(self, text: bytes) -> bytes:
        return self._seed.sign(text)

    def __repr__(self) -> str:
        return f"Signer({self.vkey!r})"


def format_note(text: str, signatures: Sequence[NoteSignature]) -> bytes:
    """Assemble text and signature lines into a note, checking it will open."""
    _check_text(text)
    if not 1 <= len(signatures) <= MAX_SIGNATURES:
        raise NoteError(f"a note carries between 1 and {MAX_SIGNATURES} signatures")
    for sig in signatures:
        if not is_valid_key_name(sig.name) or not 0 <= sig.key_id < 2**32 or not sig.signature:
            raise NoteError("a signature needs a valid name, a 32-bit key id and bytes")
    out = (text + "\n" + "".join(sig.to_line() for sig in signatures)).encode()
    if len(out) > MAX_NOTE_BYTES:
        raise NoteError(f"a note is at most {MAX_NOTE_BYTES} bytes")
    return out


def sign_note(
    text: str, signers: Sequence[NoteSigner], keep: Sequence[NoteSignature] = ()
) -> bytes:
    """Sign ``text`` with every signer; existing signatures in ``keep`` come first.

    A kept signature by the same name and key id as a new signer is replaced.
    """
    _check_text(text)
    fresh = [NoteSignature(s.name, s.key_id, s.sign(text.encode())) for s in signers]
    replaced = {(s.name, s.key_id) for s in fresh}
    kept = [s for s in keep if (s.name, s.key_id) not in replaced]
    return format_note(text, [*kept, *fresh])


def parse_note_unverified(msg: bytes | str) -> tuple[str, list[NoteSignature]]:
    """Split a note into text and signature lines, checking syntax only. Trust nothing in it."""
    # 1. Size, encoding and characters: valid UTF-8, no control characters but newline.
    raw = msg.encode() if isinstance(msg, str) else bytes(msg)
    if len(raw) > MAX_NOTE_BYTES:
        raise NoteError(f"a note is at most {MAX_NOTE_BYTES} bytes")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("a note must be valid UTF-8") from None
    if any(ord(ch) < 0x20 and ch != "\n" for ch in decoded):
        raise NoteError("a note must not contain control characters other than newline")
    # 2. The last blank line separates the text (kept with its newline) from signatures.
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("a note needs a blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("a note must end with a signature line and a newline")
    # 3. Every remaining line is a signature line; their number is bounded.
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note carries at most {MAX_SIGNATURES} signatures")
    return text, [NoteSignature.from_line(line) for line in lines]


def open_note(msg: bytes | str, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse a signed note and verify it against trusted keys.

    1. Parse strictly (``parse_note_unverified``); raises ``NoteError``.
    2. Index the verifiers by (name, key id); two alike raise ``KeyFormatError``.
    3. Verify every signature whose name and key id match a verifier; one that fails
       rejects the whole note with ``NoteSignatureError``.
    4. Keep signatures from unknown keys aside as unverified; drop exact duplicates.
    5. Without any verified signature, raise ``UnverifiedNoteError``.
    """
    # 1.
    text, signatures = parse_note_unverified(msg)
    # 2.
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        if (v.name, v.key_id) in known:
            raise KeyFormatError(f"two verifiers share the key {v.name}+{v.key_id:08x}")
        known[(v.name, v.key_id)] = v
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    body = text.encode()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        # 4.
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        # 3.
        if not verifier.verify(body, sig.signature):
            raise NoteSignatureError(f"invalid signature for key {sig.name}+{sig.key_id:08x}")
        if sig not in verified:
            verified.append(sig)
    # 5.
    if not verified:
        raise UnverifiedNoteError("note has no signature from a trusted key")
    return Note(text, tuple(verified), tuple(unverified))


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    if any(ord(ch) < 0x20 and ch != "\n" for ch in text):
        raise NoteError("note text must not contain control characters other than newline")
