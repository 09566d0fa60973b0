"""Key names, key ids, key strings and Ed25519 for signed notes (C2SP signed-note).

A verifier key ("vkey") is ``<name>+<hex key id>+<base64(type || public key)>``; a signer
key ("skey") is golang.org/x/mod/sumdb/note's ``PRIVATE+KEY+<name>+<hex key id>+
<base64(type || 32-byte seed)>``. The key id is the first four bytes, big-endian, of
``SHA-256(name || "\\n" || type || public key)``. Errors never echo key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from clearpost.core.tlog.errors import KeyFormatError

SIG_TYPE_ED25519 = 0x01
"""Signature type of plain Ed25519 note signatures."""

SIG_TYPE_COSIGNATURE_V1 = 0x04
"""Signature type of timestamped Ed25519 checkpoint cosignatures (C2SP tlog-cosignature)."""

ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64

_HEX_KEY_ID = re.compile(r"[0-9a-f]{8}")
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def is_valid_key_name(name: str) -> bool:
    """Non-empty, and free of Unicode spaces, ``+`` and control characters."""
    return bool(name) and "+" not in name and not any(ch.isspace() or ord(ch) < 0x20 for ch in name)


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """``SHA-256(name || 0x0A || sig_type || public_key)[:4]`` as a big-endian integer."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def b64decode_strict(text: str) -> bytes | None:
    """Standard padded base64 in canonical form only; ``None`` for anything else."""
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode() == text else None


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True, slots=True)
class KeyString:
    """The parts of a vkey or skey: ``material`` is the public key or the private seed."""

    name: str
    key_id: int
    sig_type: int
    material: bytes


def parse_vkey(vkey: str) -> KeyString:
    """Split a vkey and check its key id against its public key."""
    parts = _split_key(vkey, "verifier key")
    if key_id(parts.name, parts.sig_type, parts.material) != parts.key_id:
        raise KeyFormatError("verifier key id does not match its name and public key")
    return parts


def parse_skey(skey: str) -> KeyString:
    """Split an skey. The caller must derive the public key and check ``key_id``."""
    if not skey.startswith(_PRIVATE_PREFIX):
        raise KeyFormatError("a signer key starts with PRIVATE+KEY+")
    return _split_key(skey[len(_PRIVATE_PREFIX) :], "signer key")


def format_vkey(name: str, sig_type: int, public_key: bytes) -> str:
    kid = key_id(name, sig_type, public_key)
    return f"{name}+{kid:08x}+{b64encode(bytes([sig_type]) + public_key)}"


def format_skey(name: str, kid: int, sig_type: int, seed: bytes) -> str:
    return f"{_PRIVATE_PREFIX}{name}+{kid:08x}+{b64encode(bytes([sig_type]) + seed)}"


def _split_key(text: str, what: str) -> KeyString:
    fields = text.split("+", 2)
    if len(fields) != 3:
        raise KeyFormatError(f"a {what} has three parts separated by '+'")
    name, hex_id, b64 = fields
    if not is_valid_key_name(name):
        raise KeyFormatError(f"{what} name is empty or has spaces, '+' or control characters")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise KeyFormatError(f"{what} id must be 8 lower-case hex digits")
    raw = b64decode_strict(b64)
    if raw is None or len(raw) < 2:
        raise KeyFormatError(f"{what} material is not canonical base64 of a typed key")
    return KeyString(name, int(hex_id, 16), raw[0], raw[1:])


class Ed25519Seed:
    """An Ed25519 private key held as its 32-byte RFC 8032 seed. Keep it secret."""

    __slots__ = ("_private", "_seed", "public_key")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != ED25519_KEY_SIZE:
            raise KeyFormatError(f"an Ed25519 seed is {ED25519_KEY_SIZE} bytes")
        self._seed = bytes(seed)
        self._private = Ed25519PrivateKey.from_private_bytes(self._seed)
        self.public_key: bytes = self._private.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def reveal_seed(self) -> bytes:
        """The secret seed itself, for writing an skey. Handle with care."""
        return self._seed

    def __repr__(self) -> str:
        return f"Ed25519Seed(public_key={self.public_key.hex()})"


def ed25519_public_key(public_key: bytes) -> Ed25519PublicKey:
    if not isinstance(public_key, bytes | bytearray) or len(public_key) != ED25519_KEY_SIZE:
        raise KeyFormatError(f"an Ed25519 public key is {ED25519_KEY_SIZE} bytes")
    try:
        return Ed25519PublicKey.from_public_bytes(bytes(public_key))
    except ValueError as exc:
        raise KeyFormatError("not an Ed25519 public key") from exc


def ed25519_verify(key: Ed25519PublicKey, message: bytes, signature: bytes) -> bool:
    if len(signature) != ED25519_SIGNATURE_SIZE:
        return False
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True
