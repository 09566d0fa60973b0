"""RFC 9162 §2.1.1 hashing: SHA-256 with domain separation of leaves and interior nodes.

Leaves are hashed as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``, so a leaf can never be passed off as a node (the
second-preimage defence of RFC 6962/9162). Every hash is exactly ``HASH_SIZE`` bytes.
"""

from __future__ import annotations

import hashlib

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the tree with no leaves."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Return ``SHA-256(0x00 || data)``, the hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, the hash of an interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def is_hash(value: object) -> bool:
    """True when ``value`` is a byte string of exactly ``HASH_SIZE`` bytes."""
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE
