"""The auditor's own copy of the tree: enough to recompute any subtree hash it needs.

An auditor re-hashes entries ``[start, size)`` on top of a trusted right edge of the
tree at ``start`` (a ``CompactRange`` from its last run, or nothing when it starts from
zero). ``PartialTree`` holds exactly that: the edge hashes and the new leaf hashes, in
one bytearray (32 bytes a leaf, so a million entries take 32 MB).

When the recomputed root differs from the signed one, ``locate_mismatch`` finds out why
with O(log n) inclusion proofs: starting from the signed root, it asks the log for the
hashes of the two children of the subtree that differs, checks that they hash to the
parent it already trusts (so they are the log's committed values), and descends into
the child where the log's hash and ours disagree. It ends at one leaf (that entry's bytes
changed) or at a subtree whose children do not hash to it (the log's stored tree is
corrupt or its proofs lie).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from hashlib import sha256

from clearpost.core.tlog import (
    CompactRange,
    edge_nodes,
    inclusion_proof_nodes,
    node_hash,
    root_from_leaf_hashes,
)
from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.nodes import largest_power_of_two_below, subtree_nodes

__all__ = ["Mismatch", "PartialTree", "locate_mismatch"]

InclusionFetcher = Callable[[int, int], Awaitable[list[bytes]]]
"""``(index, size) -> proof hashes``, as the log serves them."""


class PartialTree:
    """Leaves ``[start, size)`` over the trusted right edge of the tree at ``start``.

    It also keeps the right edge of the whole tree as leaves arrive: the same arithmetic
    as ``CompactRange.append``, without recording the nodes each append completes (an
    auditor stores none), which makes re-hashing a million entries about twice as fast.
    """

    def __init__(self, base: CompactRange | None = None) -> None:
        base = base or CompactRange()
        self.start = base.size
        self._edges = dict(zip(edge_nodes(base.size), base.hashes, strict=True))
        self._leaves = bytearray()
        self._edge = list(base.hashes)
        self._size = base.size

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash (32 bytes)."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        self._leaves += leaf
        edge, index, acc = self._edge, self._size, leaf
        while index & 1:
            acc = sha256(b"\x01" + edge.pop() + acc).digest()
            index >>= 1
        edge.append(acc)
        self._size += 1

    def root(self) -> bytes:
        """MTH of all ``size`` leaves."""
        return self.compact().root()

    def compact(self) -> CompactRange:
        """The right edge of the tree of ``size`` leaves (the next audit's base)."""
        return CompactRange.from_hashes(self._size, self._edge)

    def leaf(self, index: int) -> bytes:
        """The hash of a leaf this tree holds (``start <= index < size``)."""
        if not self.start <= index < self.size:
            raise IndexError(f"leaf {index} is not in [{self.start}, {self.size})")
        at = (index - self.start) * HASH_SIZE
        return bytes(self._leaves[at : at + HASH_SIZE])

    def range_hash(self, begin: int, end: int) -> bytes:
        """MTH of leaves ``[begin, end)``; the range must be a node of the RFC 9162 tree.

        Ranges below ``start`` must be (or split into) the trusted edge nodes; anything
        else raises ``KeyError``.
        """
        if end <= self.start:
            (node,) = subtree_nodes(begin, end)
            return self._edges[node]
        if begin >= self.start:
            return root_from_leaf_hashes(self._slice(begin, end))
        k = largest_power_of_two_below(end - begin)
        return node_hash(self.range_hash(begin, begin + k), self.range_hash(begin + k, end))

    def _slice(self, begin: int, end: int) -> Sequence[bytes]:
        view = memoryview(self._leaves)
        lo = (begin - self.start) * HASH_SIZE
        hi = lo + (end - begin) * HASH_SIZE
        return [bytes(view[at : at + HASH_SIZE]) for at in range(lo, hi, HASH_SIZE)]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where our tree and the log's signed tree part ways.

    ``index`` is set when one entry's hash differs from what the root commits to;
    otherwise ``[begin, end)`` is a subtree whose hash the log cannot back with its own
    children (corrupt stored nodes, or proofs that lie).
    """

    begin: int
    end: int
    index: int | None


async def locate_mismatch(
    tree: PartialTree, size: int, root: bytes, fetch: InclusionFetcher
) -> Mismatch:
    """Find the entry (or subtree) where ``tree`` differs from the signed ``root``.

    Call only when ``tree.range_hash(0, size) != root``. Every hash taken from a proof is
    checked against its already-trusted parent before it is believed.
    """
    proofs: dict[int, dict[tuple[int, int], bytes]] = {}

    async def claimed(index: int, begin: int, end: int) -> bytes | None:
        if index not in proofs:
            hashes = await fetch(index, size)
            nodes = inclusion_proof_nodes(index, size)
            if len(hashes) != len(nodes):
                return None
            proofs[index] = {(n.begin, n.end): h for n, h in zip(nodes, hashes, strict=True)}
        return proofs[index].get((begin, end))

    lo, hi, trusted = 0, size, root
    while hi - lo > 1:
        mid = lo + largest_power_of_two_below(hi - lo)
        left = await claimed(mid, lo, mid)
        right = await claimed(lo, mid, hi)
        if left is None or right is None or node_hash(left, right) != trusted:
            return Mismatch(lo, hi, None)
        try:
            ours_left, ours_right = tree.range_hash(lo, mid), tree.range_hash(mid, hi)
        except KeyError:  # below the trusted edge, where we hold no leaves
            return Mismatch(lo, hi, None)
        if ours_left != left:
            hi, trusted = mid, left
        elif ours_right != right:
            lo, trusted = mid, right
        else:  # our children agree with the log's, so our parent would too
            return Mismatch(lo, hi, None)
    return Mismatch(lo, hi, lo)
