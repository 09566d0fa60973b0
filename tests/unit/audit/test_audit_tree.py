"""Pinning down a changed entry with O(log n) proofs, for every size and position."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.audit.tree import PartialTree, locate_mismatch
from clearpost.core.tlog import CompactRange, MemoryTree, leaf_hash

LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(300)]
EVIL = leaf_hash(b"evil")


def fetcher(tree: MemoryTree):  # type: ignore[no-untyped-def]
    async def fetch(index: int, size: int) -> list[bytes]:
        return tree.inclusion_proof(index, size)

    return fetch


@settings(max_examples=150, deadline=None)
@given(st.data())
async def test_the_changed_leaf_is_found(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300))
    changed = data.draw(st.integers(0, size - 1))
    start = data.draw(st.integers(0, changed))
    log = MemoryTree(LEAVES[:size])
    base = CompactRange()
    base.extend(LEAVES[:start])
    ours = PartialTree(base)
    for i in range(start, size):
        ours.append(EVIL if i == changed else LEAVES[i])
    assert ours.range_hash(0, size) != log.root()
    found = await locate_mismatch(ours, size, log.root(), fetcher(log))
    assert found.index == changed


async def test_a_log_whose_nodes_disagree_with_its_root_is_reported_as_such() -> None:
    # The stored node for leaves 0..7 is overwritten; a sequencer reading it signs a root
    # built on it, and proofs served from the store carry it too.
    corrupt = MemoryTree(LEAVES[:13])
    corrupt._nodes[next(n for n in corrupt._nodes if n.level == 3 and n.index == 0)] = EVIL
    signed_root = corrupt.root()
    ours = PartialTree()
    for leaf in LEAVES[:13]:
        ours.append(leaf)
    found = await locate_mismatch(ours, 13, signed_root, fetcher(corrupt))
    assert found.index is None and (found.begin, found.end) == (0, 8)


@settings(max_examples=100, deadline=None)
@given(start=st.integers(0, 150), count=st.integers(0, 150))
def test_the_right_edge_grows_like_compact_range(start: int, count: int) -> None:
    base = CompactRange()
    base.extend(LEAVES[:start])
    ours = PartialTree(base)
    reference = CompactRange.from_hashes(base.size, base.hashes)
    for leaf in LEAVES[start : start + count]:
        ours.append(leaf)
        reference.append(leaf)
    assert ours.size == reference.size
    assert ours.compact().hashes == reference.hashes and ours.root() == reference.root()
