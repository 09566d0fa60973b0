"""The prefix tree: a binary Merkle tree over 256-bit indexes, as in draft-ietf-keytrans-protocol.

Shape. Conceptually a full binary tree of depth 256 where the path of an index follows its bits
from the most significant one; it is *leaf-compressed*: a subtree holding exactly one leaf is
that leaf, placed at the shallowest depth where it is alone, and a subtree holding none is the
empty node. So a leaf sits one level below its longest common prefix with any other index, and
a node whose two children are a leaf and the empty node never exists. The shape (and hence the
root) depends only on the set of leaves, not on the order they were inserted in.

Hashing (SHA-256; the same values as draft-ietf-keytrans-protocol's prefix tree in its
SHA-256 cipher suites, whose 32-byte VRF outputs are our indexes)::

    empty           = 32 zero bytes
    leaf(i, v)      = SHA-256(0x02 || index[32] || value[32])
    parent(l, r)    = SHA-256(0x03 || l || r)

Leaves are never modified or removed: ``insert_many`` refuses an index already present. Each
epoch only inserts; ``prove_update``/``verify_update`` let an auditor recompute the new root
from the old one (see ``prefix_proof.py`` for the proof layout).

The in-memory representation is built for a million leaves: the leaves packed in index order
(``PrefixTree``'s docstring), plus the hash of each *branching* node (both children
non-empty) with ``KEPT_FROM`` leaves or more, in a dict keyed by ``(1 << depth) | prefix``. A
range of sorted indexes is a subtree; unary nodes (one empty child) are recomputed on the
way, they are rare.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from itertools import compress, islice
from operator import eq

from clearpost.core.keydir.errors import DuplicateIndex, KeyDirFormatError, KeyDirProofError
from clearpost.core.keydir.prefix_proof import (
    ABSENT_EMPTY,
    ABSENT_LEAF,
    INCLUDED,
    PrefixProof,
    SearchResult,
)

__all__ = [
    "ABSENT_EMPTY",
    "ABSENT_LEAF",
    "EMPTY",
    "INCLUDED",
    "INDEX_SIZE",
    "PrefixProof",
    "PrefixTree",
    "SearchResult",
    "leaf_hash",
    "parent_hash",
    "prove_update",
    "verify_prefix_proof",
    "verify_update",
]

INDEX_SIZE = 32
VALUE_SIZE = 32
EMPTY = bytes(32)
"""The value of an empty subtree."""
KEPT_FROM = 8
"""A branching node's hash is kept when this many leaves or more are under it; a smaller
subtree is hashed again when a proof or an insert needs it (a few dozen hashes for VRF
indexes, which are random). Keeping every one cost about 175 of the 315 bytes each leaf
held in memory."""
_BITS = 256
_REC = INDEX_SIZE + VALUE_SIZE
"""A leaf's record in ``PrefixTree._rec``: its index, then its value."""
_TOP_BYTES = 8
_TOP_BITS = 64
_LITTLE = sys.byteorder == "little"
_sha256 = hashlib.sha256


def leaf_hash(index: bytes, value: bytes) -> bytes:
    """``SHA-256(0x02 || index || value)``."""
    return _sha256(b"\x02" + index + value).digest()


def parent_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x03 || left || right)``."""
    return _sha256(b"\x03" + left + right).digest()


def _check_pair(index: bytes, value: bytes) -> tuple[int, bytes]:
    if not isinstance(value, bytes | bytearray) or len(value) != VALUE_SIZE:
        raise KeyDirFormatError(f"a tree value is {VALUE_SIZE} bytes")
    return _check_index(index), bytes(value)


def _check_index(index: bytes) -> int:
    if not isinstance(index, bytes | bytearray) or len(index) != INDEX_SIZE:
        raise KeyDirFormatError(f"a tree index is {INDEX_SIZE} bytes")
    return int.from_bytes(index, "big")


def _check_leaf(index: bytes, value: bytes) -> bytes:
    """The leaf's record, ``index || value``, once both are checked."""
    if not isinstance(value, bytes | bytearray) or len(value) != VALUE_SIZE:
        raise KeyDirFormatError(f"a tree value is {VALUE_SIZE} bytes")
    if not isinstance(index, bytes | bytearray) or len(index) != INDEX_SIZE:
        raise KeyDirFormatError(f"a tree index is {INDEX_SIZE} bytes")
    return bytes(index) + bytes(value)


def _ib(k: int) -> bytes:
    return k.to_bytes(INDEX_SIZE, "big")


def _tops(rec: bytes) -> array[int]:
    """The first 64 bits of each packed record, as unsigned ints (gathered by strided
    slices: no object per record)."""
    raw = bytearray(len(rec) // _REC * _TOP_BYTES)
    for k in range(_TOP_BYTES):
        raw[(_TOP_BYTES - 1 - k if _LITTLE else k) :: _TOP_BYTES] = rec[k::_REC]
    tops = array("Q")
    tops.frombytes(raw)
    return tops


def _packed(leaves: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The leaves' records in index order, packed. As they come, they are dealt into 256
    runs by their first byte; each run is then sorted on its own, so only one run's records
    are objects at a time (a list of a million records cost 100 MB more at a rebuild)."""
    runs = [bytearray() for _ in range(256)]
    for index, value in leaves:
        record = _check_leaf(index, value)
        runs[record[0]] += record
    done: list[bytes] = []
    for first, run in enumerate(runs):
        records = [run[at : at + _REC] for at in range(0, len(run), _REC)]
        runs[first] = bytearray()
        records.sort()
        done.append(b"".join(records))
    return b"".join(done)


class PrefixTree:
    """An in-memory prefix tree; build it with ``from_leaves``, grow it with ``insert_many``.

    Leaves are kept packed: ``_rec`` holds each leaf's ``index || value`` (64 bytes) in index
    order, and ``_top`` each index's first 64 bits, which decide every comparison but those
    between indexes sharing them (then the whole index is read from ``_rec``). A million
    leaves take 72 MB this way, against 141 MB as lists of ints and bytes objects.
    """

    __slots__ = ("_branch", "_rec", "_root", "_top")

    def __init__(self) -> None:
        self._rec = b""
        self._top = array("Q")
        self._branch: dict[int, bytes] = {}
        self._root = EMPTY

    @classmethod
    def from_leaves(cls, leaves: Iterable[tuple[bytes, bytes]]) -> PrefixTree:
        """A tree holding ``leaves`` (index, value); a repeated index is refused."""
        tree = cls()
        rec = _packed(leaves)
        tops = _tops(rec)
        for i in compress(range(1, len(tops)), map(eq, tops, islice(tops, 1, None))):
            if (
                rec[(i - 1) * _REC : (i - 1) * _REC + INDEX_SIZE]
                == rec[i * _REC : i * _REC + INDEX_SIZE]
            ):
                raise DuplicateIndex("the same index appears twice among the leaves")
        tree._rec, tree._top = rec, tops
        tree._root = tree._subtree(0, len(tops), 0, None) if tops else EMPTY
        return tree

    def __len__(self) -> int:
        return len(self._top)

    def root(self) -> bytes:
        """The root hash (``EMPTY`` for a tree without leaves)."""
        return self._root

    def get(self, index: bytes) -> bytes | None:
        """The value at ``index``, or None."""
        _check_index(index)
        i = self._position(bytes(index))
        at = i * _REC
        if i < len(self._top) and self._rec[at : at + INDEX_SIZE] == index:
            return self._rec[at + INDEX_SIZE : at + _REC]
        return None

    def leaves(self) -> Iterable[tuple[bytes, bytes]]:
        """Every (index, value), in index order."""
        rec = self._rec
        for at in range(0, len(rec), _REC):
            yield rec[at : at + INDEX_SIZE], rec[at + INDEX_SIZE : at + _REC]

    def insert_many(self, leaves: Iterable[tuple[bytes, bytes]]) -> bytes:
        """Insert new leaves and return the new root. Nothing changes if one is refused."""
        fresh: dict[bytes, bytes] = {}
        rec, tops = self._rec, self._top
        for index, value in leaves:
            record = _check_leaf(index, value)
            key = record[:INDEX_SIZE]
            if key in fresh:
                raise DuplicateIndex("the same index appears twice in one insert")
            i = self._position(key)
            if i < len(tops) and rec[i * _REC : i * _REC + INDEX_SIZE] == key:
                raise DuplicateIndex("an index already in the tree cannot be inserted again")
            fresh[key] = record
        if not fresh:
            return self._root
        view = memoryview(rec)
        pieces: list[bytes | memoryview] = []
        new_tops = array("Q")
        positions: list[int] = []
        prev = 0
        for key in sorted(fresh):
            i = self._position(key, prev)
            pieces.append(view[prev * _REC : i * _REC])
            new_tops.extend(tops[prev:i])
            positions.append(len(new_tops))
            pieces.append(fresh[key])
            new_tops.append(int.from_bytes(key[:_TOP_BYTES], "big"))
            prev = i
        pieces.append(view[prev * _REC :])
        new_tops.extend(tops[prev:])
        self._rec = b"".join(pieces)
        view.release()
        self._top = new_tops
        self._root = self._subtree(0, len(new_tops), 0, positions)
        return self._root

    # -- reading the packed leaves ---------------------------------------------------------

    def _key(self, i: int) -> int:
        """The whole index of leaf ``i``."""
        return int.from_bytes(self._rec[i * _REC : i * _REC + INDEX_SIZE], "big")

    def _position(self, key: bytes, lo: int = 0) -> int:
        """Where ``key`` is or would go among the leaves (``bisect_left``), from ``lo``."""
        tops = self._top
        top = int.from_bytes(key[:_TOP_BYTES], "big")
        i = bisect_left(tops, top, lo)
        j = bisect_right(tops, top, i)
        if j > i:  # leaves whose indexes start with the same 64 bits: compare them whole
            rec = self._rec
            i += bisect_left(range(i, j), key, key=lambda p: rec[p * _REC : p * _REC + INDEX_SIZE])
        return i

    def _ones_from(self, lo: int, hi: int, depth: int) -> int:
        """The first of the leaves ``lo:hi`` (which share their first ``depth`` bits) whose
        bit ``depth`` is 1 (``hi`` if none)."""
        if depth < _TOP_BITS:
            shift = _TOP_BITS - 1 - depth
            threshold = ((self._top[lo] >> shift) | 1) << shift
            return bisect_left(self._top, threshold, lo, hi)
        rec, byte, bit = self._rec, depth // 8, 7 - depth % 8
        return lo + bisect_left(range(lo, hi), 1, key=lambda p: (rec[p * _REC + byte] >> bit) & 1)

    # -- hashing -------------------------------------------------------------------------

    def _subtree(self, lo: int, hi: int, depth: int, dirty: list[int] | None) -> bytes:
        """Hash of the node at ``depth`` whose leaves are ``lo:hi`` (non-empty).

        ``dirty``: sorted positions of leaves inserted since the cached hashes were computed
        (None: everything is new). A subtree with no dirty leaf is read from the cache if its
        hash is kept (``KEPT_FROM`` leaves or more), else hashed again.
        """
        if hi - lo == 1:
            return _sha256(b"\x02" + self._rec[lo * _REC : hi * _REC]).digest()
        tops = self._top
        a = tops[lo]
        differ = a ^ tops[hi - 1]
        if differ:  # the usual case: the branching node is within the first 64 bits
            split = _TOP_BITS - differ.bit_length()
            node_id = (1 << split) | (a >> (_TOP_BITS - split))
            bits = _TOP_BITS
        else:
            a = self._key(lo)
            split = _BITS - (a ^ self._key(hi - 1)).bit_length()
            node_id = (1 << split) | (a >> (_BITS - split))
            bits = _BITS
        if dirty is not None:
            j = bisect_left(dirty, lo)
            kept = None if j < len(dirty) and dirty[j] < hi else self._branch.get(node_id)
            h = kept if kept is not None else self._branching(lo, hi, split, node_id, dirty)
        else:
            h = self._branching(lo, hi, split, node_id, None)
        # lift through the unary nodes between ``depth`` and the branching node
        for d in range(split - 1, depth - 1, -1):
            if (a >> (bits - 1 - d)) & 1:
                h = _sha256(b"\x03" + EMPTY + h).digest()
            else:
                h = _sha256(b"\x03" + h + EMPTY).digest()
        return h

    def _branching(
        self, lo: int, hi: int, split: int, node_id: int, dirty: list[int] | None
    ) -> bytes:
        m = self._ones_from(lo, hi, split)
        h = _sha256(
            b"\x03"
            + self._subtree(lo, m, split + 1, dirty)
            + self._subtree(m, hi, split + 1, dirty)
        ).digest()
        if hi - lo >= KEPT_FROM:
            self._branch[node_id] = h
        return h

    def _range_hash(self, lo: int, hi: int, depth: int) -> bytes:
        if lo == hi:
            return EMPTY
        return self._subtree(lo, hi, depth, [])

    # -- proofs --------------------------------------------------------------------------

    def prove(self, indexes: Iterable[bytes]) -> PrefixProof:
        """One batched proof: for each distinct index, present (with its depth) or absent."""
        targets = sorted({_check_index(i) for i in indexes})
        results: list[SearchResult] = []
        copath: list[bytes | None] = []
        if targets:
            self._prove(0, len(self._top), 0, targets, results, copath)
        return PrefixProof(tuple(results), tuple(copath))

    def _prove(
        self,
        lo: int,
        hi: int,
        depth: int,
        targets: list[int],
        results: list[SearchResult],
        copath: list[bytes | None],
    ) -> None:
        if lo == hi:
            results.extend(SearchResult(ABSENT_EMPTY, depth) for _ in targets)
            return
        if hi - lo == 1:
            k = self._key(lo)
            for t in targets:
                if t == k:
                    results.append(SearchResult(INCLUDED, depth))
                else:
                    leaf = self._rec[lo * _REC : hi * _REC]
                    results.append(
                        SearchResult(ABSENT_LEAF, depth, leaf[:INDEX_SIZE], leaf[INDEX_SIZE:])
                    )
            return
        shift = _BITS - 1 - depth
        threshold = ((targets[0] >> shift) | 1) << shift
        t = bisect_left(targets, threshold)
        # the leaves lo:hi share the targets' first ``depth`` bits; bit ``depth`` parts them
        m = self._ones_from(lo, hi, depth)
        for side_lo, side_hi, side_targets in (
            (lo, m, targets[:t]),
            (m, hi, targets[t:]),
        ):
            if side_targets:
                self._prove(side_lo, side_hi, depth + 1, side_targets, results, copath)
            elif side_lo == side_hi:
                copath.append(None)
            else:
                copath.append(self._range_hash(side_lo, side_hi, depth + 1))


# -- verification: rebuild the part of the tree a proof shows ---------------------------------

_E = 0  # empty
_L = 1  # leaf (index int, value bytes)
_H = 2  # opaque subtree (hash)
_N = 3  # parent (left, right)

_Node = tuple[object, ...]
_EMPTY_NODE: _Node = (_E,)


def _node_hash(node: _Node) -> bytes:
    tag = node[0]
    if tag == _E:
        return EMPTY
    if tag == _L:
        return leaf_hash(_ib(node[1]), node[2])  # type: ignore[arg-type]
    if tag == _H:
        return node[1]  # type: ignore[return-value]
    return parent_hash(_node_hash(node[1]), _node_hash(node[2]))  # type: ignore[arg-type]


class _Rebuild:
    """Reads a proof in its depth-first order, checking it against the expected values."""

    def __init__(self, proof: PrefixProof, targets: list[int], expected: list[bytes | None]):
        self.proof = proof
        self.targets = targets
        self.expected = expected
        self.copath_at = 0

    def node(self, depth: int, start: int, end: int) -> _Node:
        results = self.proof.results
        if end > len(results):
            raise KeyDirProofError("the proof has fewer results than indexes searched")
        here = [results[i].depth == depth for i in range(start, end)]
        if any(here):
            if not all(here):
                raise KeyDirProofError("results that share a path end at different depths")
            return self._terminal(depth, start, end)
        if depth >= _BITS or any(results[i].depth < depth for i in range(start, end)):
            raise KeyDirProofError("a result's depth does not match the proof's shape")
        shift = _BITS - 1 - depth
        split = start
        while split < end and not (self.targets[split] >> shift) & 1:
            split += 1
        left = self.node(depth + 1, start, split) if split > start else self._sibling()
        right = self.node(depth + 1, split, end) if end > split else self._sibling()
        if (left[0] == _E and right[0] in (_E, _L)) or (right[0] == _E and left[0] == _L):
            raise KeyDirProofError("the proof shows a subtree that is not in canonical form")
        return (_N, left, right)

    def _sibling(self) -> _Node:
        copath = self.proof.copath
        if self.copath_at >= len(copath):
            raise KeyDirProofError("the proof has too few copath nodes")
        value = copath[self.copath_at]
        self.copath_at += 1
        return _EMPTY_NODE if value is None else (_H, value)

    def _terminal(self, depth: int, start: int, end: int) -> _Node:
        """A node where paths end: the empty node, or one leaf (searched or not)."""
        results = self.proof.results[start:end]
        targets = self.targets[start:end]
        expected = self.expected[start:end]
        kinds = {r.kind for r in results}
        if kinds == {ABSENT_EMPTY}:
            if any(v is not None for v in expected):
                raise KeyDirProofError("the proof shows an index absent that should be present")
            return _EMPTY_NODE
        if ABSENT_EMPTY in kinds:
            raise KeyDirProofError("results that share a path end differently")
        leaf: tuple[int, bytes] | None = None
        for t, v, r in zip(targets, expected, results, strict=True):
            if r.kind == INCLUDED:
                if v is None:
                    raise KeyDirProofError("the proof shows an index present that should be absent")
                here = (t, v)
            else:
                if v is not None:
                    raise KeyDirProofError("the proof shows an index absent that should be present")
                assert r.leaf_index is not None and r.leaf_value is not None  # by SearchResult
                here = (int.from_bytes(r.leaf_index, "big"), r.leaf_value)
                if here[0] == t:
                    raise KeyDirProofError("an absent index cannot be the leaf that proves it")
            if leaf is not None and leaf != here:
                raise KeyDirProofError("results that share a path end at different leaves")
            leaf = here
        assert leaf is not None
        if leaf[0] >> (_BITS - depth) != targets[0] >> (_BITS - depth):
            raise KeyDirProofError("the leaf shown for an absent index is not on its path")
        return (_L, leaf[0], leaf[1])


def _rebuild(proof: PrefixProof, expected: Mapping[bytes, bytes | None]) -> tuple[_Node, list[int]]:
    pairs = sorted((_check_index(i), v) for i, v in expected.items())
    targets = [k for k, _ in pairs]
    values = [v for _, v in pairs]
    if len(set(targets)) != len(targets):
        raise KeyDirFormatError("an index is expected twice")
    for v in values:
        if v is not None and (not isinstance(v, bytes) or len(v) != VALUE_SIZE):
            raise KeyDirFormatError(f"a tree value is {VALUE_SIZE} bytes")
    if len(proof.results) != len(targets):
        raise KeyDirProofError("the proof has a result per searched index, no more, no fewer")
    if not targets:
        if proof.copath:
            raise KeyDirProofError("an empty proof has no copath")
        return _EMPTY_NODE, targets
    builder = _Rebuild(proof, targets, values)
    node = builder.node(0, 0, len(targets))
    if builder.copath_at != len(proof.copath):
        raise KeyDirProofError("the proof has copath nodes left over")
    return node, targets


def verify_prefix_proof(
    root: bytes, proof: PrefixProof, expected: Mapping[bytes, bytes | None]
) -> None:
    """Check that, under ``root``, each index of ``expected`` holds its value (None: absent).

    Steps:
    1. sort the searched indexes; the proof has one result per index, in that order;
    2. walk the proof depth-first, taking copath nodes in order, rebuilding the tree's part
       (a result ends a path: the searched leaf, another leaf on the path, or the empty node);
    3. refuse a shape that is not canonical or a leftover copath node;
    4. the rebuilt root must equal ``root``.
    """
    # 1-3.
    node, _ = _rebuild(proof, expected)
    # 4.
    if _node_hash(node) != root:
        raise KeyDirProofError("the proof does not lead to the expected root")


def prove_update(tree_before: PrefixTree, new_indexes: Iterable[bytes]) -> PrefixProof:
    """What an auditor needs to recompute the new root: the absence of each new index before."""
    return tree_before.prove(new_indexes)


def _insert(node: _Node, k: int, v: bytes, depth: int) -> _Node:
    tag = node[0]
    if tag == _E:
        return (_L, k, v)
    if tag == _N:
        if (k >> (_BITS - 1 - depth)) & 1:
            return (_N, node[1], _insert(node[2], k, v, depth + 1))  # type: ignore[arg-type]
        return (_N, _insert(node[1], k, v, depth + 1), node[2])  # type: ignore[arg-type]
    if tag == _L:
        if node[1] == k:
            raise KeyDirProofError("an inserted index was already in the tree")
        return _split(node, (_L, k, v), depth)
    raise KeyDirProofError("the update proof does not cover an inserted index")


def _split(a: _Node, b: _Node, depth: int) -> _Node:
    if depth >= _BITS:
        raise KeyDirProofError("two leaves with one index")
    shift = _BITS - 1 - depth
    bit_a = (a[1] >> shift) & 1  # type: ignore[operator]
    bit_b = (b[1] >> shift) & 1  # type: ignore[operator]
    if bit_a == bit_b:
        child = _split(a, b, depth + 1)
        return (_N, _EMPTY_NODE, child) if bit_a else (_N, child, _EMPTY_NODE)
    return (_N, b, a) if bit_a else (_N, a, b)


def verify_update(
    old_root: bytes, new_root: bytes, proof: PrefixProof, inserted: Mapping[bytes, bytes]
) -> None:
    """Check that ``new_root`` is ``old_root`` plus exactly the ``inserted`` leaves.

    Steps:
    1. the proof shows every inserted index absent under ``old_root`` (so no existing leaf is
       replaced), and it is the whole path of each: every other leaf is inside the copath;
    2. insert the new leaves into the rebuilt part of the tree (the rest is untouched hashes);
    3. its root must equal ``new_root``: nothing else was added, changed or removed.
    """
    if not inserted:
        if proof.results or proof.copath or old_root != new_root:
            raise KeyDirProofError("an epoch without inserts keeps its root and has no proof")
        return
    # 1.
    node, _ = _rebuild(proof, dict.fromkeys(inserted))
    if _node_hash(node) != old_root:
        raise KeyDirProofError("the update proof does not lead to the old root")
    # 2.
    for index, value in sorted(inserted.items()):
        k, v = _check_pair(index, value)
        node = _insert(node, k, v, 0)
    # 3.
    if _node_hash(node) != new_root:
        raise KeyDirProofError("the old root plus the inserted leaves is not the new root")
