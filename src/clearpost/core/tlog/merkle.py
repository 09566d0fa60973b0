"""RFC 9162 §2.1 Merkle trees: tree hash, proof generation and proof verification.

Generation accepts either the full list of leaf hashes (the RFC's recursive definition,
used as the reference) or a ``NodeReader`` over stored perfect-subtree nodes (what a
database serves, O(log n) reads per proof; see ``nodes``). Both give identical proofs.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 step by step, returns ``None`` on
success and raises ``ProofError`` on any failure, including malformed input (hashes not
32 bytes, negative sizes, proofs of the wrong length).
"""

from __future__ import annotations

from collections.abc import Sequence

from clearpost.core.tlog.errors import ProofError, TreeRangeError
from clearpost.core.tlog.hashing import EMPTY_ROOT, HASH_SIZE, is_hash, leaf_hash, node_hash
from clearpost.core.tlog.nodes import (
    MAX_TREE_SIZE,
    NodeReader,
    check_size,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    largest_power_of_two_below,
    resolve_proof,
    root_node,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LeafSource",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "root_from_reader",
    "verify_consistency",
    "verify_inclusion",
]

LeafSource = Sequence[bytes] | NodeReader
"""Where proofs come from: all leaf hashes in order, or a reader of stored nodes."""

MAX_PROOF_LENGTH = 65
"""For trees of at most 2**64 - 1 leaves: inclusion proofs have at most 64 hashes and
consistency proofs at most 65 (the tree's depth plus the old tree's own subtree)."""


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D_n) of RFC 9162 §2.1.1, from the leaf hashes (``EMPTY_ROOT`` for none).

    Hashes level by level, carrying an unpaired last node up unchanged, which gives the
    same tree as the RFC's split at the largest power of two below n.
    """
    level = [bytes(h) for h in leaf_hashes]
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def root_from_reader(read: NodeReader, size: int) -> bytes:
    """MTH of the first ``size`` leaves, from stored perfect-subtree nodes."""
    node = root_node(size)
    return EMPTY_ROOT if node is None else node.hash_with(read)


def inclusion_proof(source: LeafSource, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 inclusion proof ``PATH(index, D[0:size])``.

    Raises ``TreeRangeError`` unless ``0 <= index < size`` (and, for a list source,
    ``size`` does not exceed the number of leaves given).
    """
    if callable(source):
        return resolve_proof(inclusion_proof_nodes(index, size), source)
    _check_list_source(source, size)
    inclusion_proof_nodes(index, size)  # same argument checks for both sources
    return _path(index, source, 0, size)


def consistency_proof(source: LeafSource, m: int, n: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 consistency proof ``PROOF(m, D[0:n])`` for ``0 < m <= n``.

    The proof for ``m == n`` is empty. Raises ``TreeRangeError`` for other sizes.
    """
    if callable(source):
        return resolve_proof(consistency_proof_nodes(m, n), source)
    _check_list_source(source, n)
    consistency_proof_nodes(m, n)
    return _subproof(m, source, 0, n, True)


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Implements RFC 9162 §2.1.3.2; raises ``ProofError`` on any failure.
    """
    _check_verify_sizes(index, size)
    path = _check_hashes(proof, leaf_hash, root)
    # 1. leaf_index must be smaller than tree_size.
    if index >= size:
        raise ProofError("leaf index is not smaller than the tree size")
    # 2. fn = leaf_index, sn = tree_size - 1.
    fn, sn = index, size - 1
    # 3. r = hash.
    r = leaf_hash
    # 4. For each p in inclusion_path:
    for p in path:
        # 4a. If sn is 0, fail.
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        # 4b. If LSB(fn) is set or fn == sn: r = HASH(0x01 || p || r), then shift
        #     until LSB(fn) is set or fn is 0; otherwise r = HASH(0x01 || r || p).
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # 4c. Shift both once.
        fn >>= 1
        sn >>= 1
    # 5. sn must be 0 and r must equal the root.
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root")


def verify_consistency(
    m: int, n: int, root_m: bytes, root_n: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of size ``m`` and ``root_m`` is a prefix of ``n`` and ``root_n``.

    Implements RFC 9162 §2.1.4.2 for ``0 < m < n``. For ``m == n`` the proof must be empty
    and the roots equal (and be ``EMPTY_ROOT`` if both sizes are 0). A proof from the
    empty tree (``m == 0 < n``) proves nothing and is rejected, as is ``m > n``. Raises
    ``ProofError`` on any failure.
    """
    _check_verify_sizes(m, n)
    path = _check_hashes(proof, root_m, root_n)
    if m > n:
        raise ProofError("old tree size is larger than the new one")
    if m == n:
        if path:
            raise ProofError("a proof between equal sizes must be empty")
        if root_m != root_n or (m == 0 and root_m != EMPTY_ROOT):
            raise ProofError("roots differ for the same tree size")
        return
    if m == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    # 1. An empty consistency_path fails.
    if not path:
        raise ProofError("consistency proof is empty")
    # 2. If first is an exact power of 2, prepend first_hash.
    if m & (m - 1) == 0:
        path.insert(0, root_m)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = m - 1, n - 1
    # 4. While LSB(fn) is set, shift both right.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value of the path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        # 6a. If sn is 0, fail.
        if sn == 0:
            raise ProofError("consistency proof is too long")
        # 6b. If LSB(fn) is set or fn == sn: fold c in on the left of both, then shift
        #     until LSB(fn) is set or fn is 0; otherwise fold c in on the right of sr.
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # 6c. Shift both once.
        fn >>= 1
        sn >>= 1
    # 7. fr must equal first_hash, sr must equal second_hash and sn must be 0.
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root_m:
        raise ProofError("consistency proof does not lead to the old root")
    if sr != root_n:
        raise ProofError("consistency proof does not lead to the new root")


def _check_verify_sizes(a: int, b: int) -> None:
    for value in (a, b):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProofError("tree sizes and indexes must be integers")
        if not 0 <= value <= MAX_TREE_SIZE:
            raise ProofError("tree sizes and indexes must be unsigned 64-bit integers")


def _check_hashes(proof: Sequence[bytes], *hashes: bytes) -> list[bytes]:
    for h in hashes:
        if not is_hash(h):
            raise ProofError(f"hashes must be {HASH_SIZE} bytes")
    if isinstance(proof, bytes | bytearray | str) or len(proof) > MAX_PROOF_LENGTH:
        raise ProofError(f"a proof is a list of at most {MAX_PROOF_LENGTH} hashes")
    path = list(proof)
    if not all(is_hash(p) for p in path):
        raise ProofError(f"proof hashes must be {HASH_SIZE} bytes")
    return [bytes(p) for p in path]


def _check_list_source(leaves: Sequence[bytes], size: int) -> None:
    check_size("size", size)
    if size > len(leaves):
        raise TreeRangeError("size exceeds the number of leaves")


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    if hi - lo == 1:
        return leaves[lo]
    k = largest_power_of_two_below(hi - lo)
    return node_hash(_mth(leaves, lo, lo + k), _mth(leaves, lo + k, hi))


def _path(m: int, leaves: Sequence[bytes], lo: int, hi: int) -> list[bytes]:
    # RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]); m is absolute.
    if hi - lo == 1:
        return []
    k = largest_power_of_two_below(hi - lo)
    if m < lo + k:
        return [*_path(m, leaves, lo, lo + k), _mth(leaves, lo + k, hi)]
    return [*_path(m, leaves, lo + k, hi), _mth(leaves, lo, lo + k)]


def _subproof(m: int, leaves: Sequence[bytes], lo: int, hi: int, whole: bool) -> list[bytes]:
    # RFC 9162 §2.1.4.1 SUBPROOF(m, D[lo:hi], b); m is relative to lo.
    if m == hi - lo:
        return [] if whole else [_mth(leaves, lo, hi)]
    k = largest_power_of_two_below(hi - lo)
    if m <= k:
        return [*_subproof(m, leaves, lo, lo + k, whole), _mth(leaves, lo + k, hi)]
    return [*_subproof(m - k, leaves, lo + k, hi, False), _mth(leaves, lo, lo + k)]
