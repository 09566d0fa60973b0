"""Which stored tree nodes a proof needs, so a database can serve it in O(log n) reads.

Nodes are addressed as perfect subtrees: ``NodeId(level, index)`` covers the leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes. Such a
node never changes once its last leaf is appended, so a log stores each one once (see
``compact.CompactRange``) and never rewrites it.

Every hash in an RFC 9162 proof is the Merkle Tree Hash of a leaf range. When the range
is a perfect subtree, it is one stored node. When it runs into the tree's right edge and
is not perfect, it is an *ephemeral* node: the right fold (``node_hash``) of the perfect
subtrees that tile it, largest first. ``ProofNode`` names the stored nodes either way, so
the caller can fetch all of them in one batch and then call ``resolve_proof``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from clearpost.core.tlog.errors import TreeRangeError
from clearpost.core.tlog.hashing import EMPTY_ROOT, node_hash

MAX_TREE_SIZE = 2**64 - 1
"""Largest tree size we accept: sizes travel as unsigned 64-bit integers."""


class NodeId(NamedTuple):
    """A perfect subtree: ``level`` 0 is a leaf; it covers ``2**level`` leaves from ``begin``.

    A named tuple rather than a dataclass: a proof at a million entries builds, hashes
    and sorts a few dozen of these per request, and tuples do that in C."""

    level: int
    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nothing here uses)

    @property
    def begin(self) -> int:
        """First leaf index covered."""
        return self.index << self.level

    @property
    def end(self) -> int:
        """One past the last leaf index covered."""
        return (self.index + 1) << self.level


NodeReader = Callable[[NodeId], bytes]
"""Returns the stored hash of a perfect subtree (for example ``dict.__getitem__``)."""


class ProofNode(NamedTuple):
    """One hash of a proof: the MTH of leaves ``[begin, end)``, tiled by stored ``parts``.

    ``parts`` are perfect subtrees in leaf order, strictly decreasing in size. With one
    part the hash is that stored node; with several it is ephemeral and equals
    ``node_hash(h0, node_hash(h1, ... node_hash(h[k-2], h[k-1])))``.
    """

    parts: tuple[NodeId, ...]

    @property
    def ephemeral(self) -> bool:
        """True when the hash must be computed from several stored nodes."""
        return len(self.parts) > 1

    @property
    def begin(self) -> int:
        """First leaf index whose hash this node covers."""
        return self.parts[0].begin

    @property
    def end(self) -> int:
        """One past the last leaf index covered."""
        return self.parts[-1].end

    def hash_with(self, read: NodeReader) -> bytes:
        """Compute this node's hash from stored perfect-subtree hashes."""
        return fold_right([read(part) for part in self.parts])


def check_size(name: str, value: object, *, minimum: int = 0) -> int:
    """Return ``value`` if it is an int in ``[minimum, MAX_TREE_SIZE]``; else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TreeRangeError(f"{name} must be an integer")
    if not minimum <= value <= MAX_TREE_SIZE:
        raise TreeRangeError(f"{name} must be between {minimum} and {MAX_TREE_SIZE}")
    return value


def largest_power_of_two_below(n: int) -> int:
    """RFC 9162's ``k``: the largest power of two strictly smaller than ``n`` (``n > 1``)."""
    return 1 << ((n - 1).bit_length() - 1)


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash perfect-subtree roots (largest first) into the root of the range they tile."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def subtree_nodes(begin: int, end: int) -> tuple[NodeId, ...]:
    """The perfect subtrees, largest first, whose right fold is ``MTH(D[begin:end])``.

    Requires ``begin < end`` and ``begin`` to be a multiple of the largest power of two
    not above ``end - begin`` — true of every range an RFC 9162 proof or root uses.
    """
    if not 0 <= begin < end:
        raise TreeRangeError("a subtree needs at least one leaf")
    top = (end - begin).bit_length() - 1
    if begin % (1 << top):
        raise TreeRangeError("range is not a subtree of the Merkle tree")
    parts = []
    remaining = end - begin
    while remaining:  # one part per set bit of the range's width, highest first
        level = remaining.bit_length() - 1
        parts.append(NodeId(level, begin >> level))
        begin += 1 << level
        remaining -= 1 << level
    return tuple(parts)


def root_node(size: int) -> ProofNode | None:
    """The stored nodes that make up the root of a tree of ``size`` (None when empty)."""
    check_size("size", size)
    return ProofNode(subtree_nodes(0, size)) if size else None


def inclusion_proof_nodes(index: int, size: int) -> list[ProofNode]:
    """Nodes of RFC 9162 §2.1.3.1 ``PATH(index, D[0:size])``, in proof order (leaf side first).

    Raises ``TreeRangeError`` unless ``0 <= index < size``.
    """
    check_size("size", size, minimum=1)
    check_size("index", index)
    if index >= size:
        raise TreeRangeError("index must be smaller than the tree size")
    path: list[ProofNode] = []
    lo, hi = 0, size
    while hi - lo > 1:
        level = (hi - lo - 1).bit_length() - 1  # k = 2**level, largest power of two below
        k = 1 << level
        if index < lo + k:
            path.append(ProofNode(subtree_nodes(lo + k, hi)))
            hi = lo + k
        else:  # the left part [lo, lo + k) is always one perfect subtree
            path.append(ProofNode((NodeId(level, lo >> level),)))
            lo += k
    path.reverse()
    return path


def consistency_proof_nodes(m: int, n: int) -> list[ProofNode]:
    """Nodes of RFC 9162 §2.1.4.1 ``PROOF(m, D[0:n])``, in proof order.

    Defined for ``0 < m <= n``; for ``m == n`` the proof is empty. Raises
    ``TreeRangeError`` otherwise (a proof from the empty tree proves nothing).
    """
    check_size("old size", m, minimum=1)
    check_size("new size", n, minimum=1)
    if m > n:
        raise TreeRangeError("old size must not exceed new size")
    proof: list[ProofNode] = []
    lo, hi, whole = 0, n, True
    while m != hi - lo:
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            proof.append(ProofNode(subtree_nodes(lo + k, hi)))
            hi = lo + k
        else:
            proof.append(ProofNode(subtree_nodes(lo, lo + k)))
            m -= k
            lo += k
            whole = False
    if not whole:
        proof.append(ProofNode(subtree_nodes(lo, hi)))
    proof.reverse()
    return proof


def node_ids(nodes: Iterable[ProofNode]) -> list[NodeId]:
    """Every stored node the given proof nodes need, once each, in first-use order."""
    return list(dict.fromkeys(part for node in nodes for part in node.parts))


def resolve_proof(nodes: Iterable[ProofNode], read: NodeReader) -> list[bytes]:
    """Turn proof nodes into proof hashes by reading (and folding) stored nodes."""
    return [node.hash_with(read) for node in nodes]
