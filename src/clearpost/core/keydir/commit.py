"""Commitments to a label's value and the VRF input of a (label, version).

A leaf of the prefix tree holds ``commit(opening, label, version, value)``, never the value:
without the opening the directory reveals nothing about the value (hiding, from the opening's
128+ random bits), and no second (opening, value) gives the same commitment (binding, from
SHA-256's collision resistance and the injective length-prefixed encoding)::

    label_input(label, version) = uint16_be(len(label)) || label || uint32_be(version)
    commit(...) = SHA-256("clearpost/keydir/commit/v1" || 0x00
                          || uint8(len(opening)) || opening
                          || label_input(label, version)
                          || uint32_be(len(value)) || value)

``label_input`` is also the VRF's ``alpha``: the tree index of the version is the first 32
bytes of ``ECVRF_proof_to_hash(ECVRF_prove(sk, label_input(label, version)))``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from clearpost.core.keydir.errors import KeyDirFormatError

__all__ = [
    "MAX_LABEL_BYTES",
    "MAX_VALUE_BYTES",
    "MAX_VERSION",
    "OPENING_SIZE",
    "commit",
    "label_input",
    "new_opening",
]

OPENING_SIZE = 16
"""Bytes of a fresh opening (the drafts' Kc); ``commit`` also takes 32-byte openings."""
MAX_LABEL_BYTES = 0xFFFF
MAX_VERSION = 0xFFFFFFFF
MAX_VALUE_BYTES = 0xFFFFFFFF
_DOMAIN = b"clearpost/keydir/commit/v1\x00"


def label_input(label: bytes, version: int) -> bytes:
    """``uint16_be(len(label)) || label || uint32_be(version)``: the VRF input of a version."""
    if not isinstance(label, bytes | bytearray) or len(label) > MAX_LABEL_BYTES:
        raise KeyDirFormatError(f"a label is at most {MAX_LABEL_BYTES} bytes")
    if isinstance(version, bool) or not isinstance(version, int):
        raise KeyDirFormatError("a version is an integer")
    if not 0 <= version <= MAX_VERSION:
        raise KeyDirFormatError(f"a version is in 0..{MAX_VERSION}")
    return len(label).to_bytes(2, "big") + bytes(label) + version.to_bytes(4, "big")


def commit(opening: bytes, label: bytes, version: int, value: bytes) -> bytes:
    """The 32-byte commitment stored in the tree for ``(label, version) -> value``."""
    if not isinstance(opening, bytes | bytearray) or len(opening) not in (16, 32):
        raise KeyDirFormatError("an opening is 16 or 32 bytes")
    if not isinstance(value, bytes | bytearray) or len(value) > MAX_VALUE_BYTES:
        raise KeyDirFormatError("a value is bytes, at most 2**32 - 1 of them")
    return hashlib.sha256(
        _DOMAIN
        + bytes([len(opening)])
        + bytes(opening)
        + label_input(label, version)
        + len(value).to_bytes(4, "big")
        + bytes(value)
    ).digest()


def new_opening(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A fresh 16-byte opening; tests pass a deterministic ``random_bytes``."""
    opening = random_bytes(OPENING_SIZE)
    if len(opening) != OPENING_SIZE:
        raise KeyDirFormatError(f"random_bytes returned {len(opening)} bytes, not {OPENING_SIZE}")
    return opening
