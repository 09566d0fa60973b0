"""Growing a tree by appending leaves, keeping only what a log must store.

``CompactRange`` is what a sequencer holds in memory: the perfect-subtree roots of the
tree's right edge (one per set bit of the size). Appending a leaf returns every node
that the append completed — the leaf itself at level 0 and each parent it closes — so
the caller can persist exactly those rows; nothing stored ever changes afterwards.

``MemoryTree`` keeps every node in a dict, for tests and small tools.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from clearpost.core.tlog import merkle
from clearpost.core.tlog.errors import TreeRangeError
from clearpost.core.tlog.hashing import HASH_SIZE, is_hash, leaf_hash, node_hash
from clearpost.core.tlog.nodes import (
    MAX_TREE_SIZE,
    NodeId,
    NodeReader,
    check_size,
    fold_right,
    subtree_nodes,
)

StoredNode = tuple[NodeId, bytes]
"""A completed perfect subtree and its hash, ready to persist."""


class CompactRange:
    """The right edge of a tree of ``size`` leaves: enough to append and to compute the root."""

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Rebuild from the hashes of ``edge_nodes(size)``, in that order."""
        check_size("size", size)
        if len(hashes) != size.bit_count() or not all(is_hash(h) for h in hashes):
            raise TreeRangeError(
                f"a tree of size {size} needs {size.bit_count()} edge hashes of {HASH_SIZE} bytes"
            )
        new = cls()
        new._size = size
        new._hashes = [bytes(h) for h in hashes]
        return new

    @classmethod
    def from_reader(cls, read: NodeReader, size: int) -> CompactRange:
        """Rebuild from stored nodes: reads the ``popcount(size)`` edge nodes."""
        return cls.from_hashes(size, [read(node) for node in edge_nodes(size)])

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of ``edge_nodes(size)``, largest subtree first."""
        return tuple(self._hashes)

    def root(self) -> bytes:
        """MTH of all leaves so far (``EMPTY_ROOT`` when there are none)."""
        return fold_right(self._hashes)

    def append(self, leaf: bytes) -> list[StoredNode]:
        """Append one leaf hash; return the nodes it completed, leaf first, root-ward last."""
        if not is_hash(leaf):
            raise TreeRangeError(f"leaf hashes must be {HASH_SIZE} bytes")
        if self._size >= MAX_TREE_SIZE:
            raise TreeRangeError("the tree is full")
        index, level, acc = self._size, 0, bytes(leaf)
        completed = [(NodeId(0, index), acc)]
        while index & 1:
            acc = node_hash(self._hashes.pop(), acc)
            index >>= 1
            level += 1
            completed.append((NodeId(level, index), acc))
        self._hashes.append(acc)
        self._size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[StoredNode]:
        """Append several leaf hashes; return every node completed, in completion order."""
        completed: list[StoredNode] = []
        for leaf in leaves:
            completed.extend(self.append(leaf))
        return completed


def edge_nodes(size: int) -> tuple[NodeId, ...]:
    """The perfect subtrees, largest first, that tile leaves ``[0, size)``."""
    check_size("size", size)
    return subtree_nodes(0, size) if size else ()


class MemoryTree:
    """A whole tree in memory: every perfect-subtree node, addressable by ``NodeId``."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._range = CompactRange()
        self._nodes: dict[NodeId, bytes] = {}
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        self._nodes.update(self._range.append(leaf))
        return self._range.size - 1

    def append_data(self, data: bytes) -> int:
        """Append an entry (hashed with ``leaf_hash``); return its index."""
        return self.append(leaf_hash(data))

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def read(self, node: NodeId) -> bytes:
        """The stored hash of a perfect subtree; a ``NodeReader``."""
        try:
            return self._nodes[node]
        except KeyError:
            raise TreeRangeError("no such node in this tree") from None

    def leaf_hashes(self) -> list[bytes]:
        return [self._nodes[NodeId(0, i)] for i in range(self.size)]

    def root(self, size: int | None = None) -> bytes:
        """Root of the tree at ``size`` (default: now)."""
        return merkle.root_from_reader(self.read, self._size_or_now(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(self.read, index, self._size_or_now(size))

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(self.read, m, self._size_or_now(n))

    def _size_or_now(self, size: int | None) -> int:
        if size is None:
            return self.size
        if check_size("size", size) > self.size:
            raise TreeRangeError("size exceeds the tree")
        return size
