"""Properties of proofs and tree growth, exhaustively for small trees and by Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.tlog import (
    CompactRange,
    MemoryTree,
    NodeId,
    ProofError,
    TreeRangeError,
    consistency_proof,
    consistency_proof_nodes,
    edge_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    node_ids,
    root_from_leaf_hashes,
    root_from_reader,
    verify_consistency,
    verify_inclusion,
)

MAX = 64
LEAVES = [leaf_hash(i.to_bytes(2, "big")) for i in range(MAX)]
TREE = MemoryTree(LEAVES)
ROOTS = [root_from_leaf_hashes(LEAVES[:n]) for n in range(MAX + 1)]

FAST = settings(max_examples=300, deadline=None)


def flip(data: bytes, position: int, bit: int) -> bytes:
    out = bytearray(data)
    out[position % len(out)] ^= 1 << bit
    return bytes(out)


def test_every_inclusion_proof_up_to_64_verifies_and_matches_the_node_path() -> None:
    for size in range(1, MAX + 1):
        assert TREE.root(size) == ROOTS[size]
        for index in range(size):
            proof = inclusion_proof(LEAVES, index, size)
            assert inclusion_proof(TREE.read, index, size) == proof
            verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


def test_every_consistency_proof_up_to_64_verifies_and_matches_the_node_path() -> None:
    for n in range(1, MAX + 1):
        for m in range(1, n + 1):
            proof = consistency_proof(LEAVES, m, n)
            assert consistency_proof(TREE.read, m, n) == proof
            verify_consistency(m, n, ROOTS[m], ROOTS[n], proof)


@st.composite
def index_and_size(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, MAX))
    return draw(st.integers(1, n)), n


@FAST
@given(index_and_size(), st.integers(0, 10_000), st.integers(0, 7), st.integers(0, 2))
def test_a_flipped_bit_breaks_an_inclusion_proof(
    case: tuple[int, int], where: int, bit: int, target: int
) -> None:
    index, size = case
    proof = inclusion_proof(LEAVES, index, size)
    leaf, root = LEAVES[index], ROOTS[size]
    if target == 0 and proof:
        i = where % len(proof)
        proof = [*proof[:i], flip(proof[i], where // len(proof), bit), *proof[i + 1 :]]
    elif target == 1:
        root = flip(root, where, bit)
    else:
        leaf = flip(leaf, where, bit)
    if (proof, root, leaf) == (inclusion_proof(LEAVES, index, size), ROOTS[size], LEAVES[index]):
        return  # nothing was flipped (an empty proof)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, root)


@FAST
@given(index_and_size(), index_and_size())
def test_an_inclusion_proof_does_not_prove_another_position(
    case: tuple[int, int], other: tuple[int, int]
) -> None:
    """Claim the proof for (index, size) at another (index', size') with that tree's root.

    (Keeping the old root while changing only the size can legitimately pass: the
    verifier binds a size to a root only through the root, which is why checkpoints
    sign both together.)
    """
    index, size = case
    index2, size2 = other
    proof = inclusion_proof(LEAVES, index, size)
    if index == index2 and proof == inclusion_proof(LEAVES, index2, size2):
        return  # the same proof is genuinely valid there too
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index2, size2, proof, ROOTS[size2])


def test_a_proof_binds_size_only_through_the_root() -> None:
    """RFC 9162 verification cannot tell a size from another with the same proof shape.

    Leaf 0's proof in the 3-leaf tree has the shape of its proof in a 4-leaf tree, so
    it "verifies" for size 4 against the size-3 root. Callers must take (size, root)
    together from a signed checkpoint, never a size from one place and a root from another.
    """
    proof = inclusion_proof(LEAVES, 0, 3)
    verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[3])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[0], 0, 4, proof, ROOTS[4])


@FAST
@given(index_and_size(), st.integers(0, 7))
def test_a_shortened_or_lengthened_inclusion_proof_fails(case: tuple[int, int], bit: int) -> None:
    index, size = case
    proof = inclusion_proof(LEAVES, index, size)
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[index], index, size, [*proof, ROOTS[size]], ROOTS[size])
    if proof:
        with pytest.raises(ProofError):
            verify_inclusion(LEAVES[index], index, size, proof[:-1], ROOTS[size])


@FAST
@given(two_sizes(), st.integers(0, 10_000), st.integers(0, 7), st.integers(0, 2))
def test_a_flipped_bit_breaks_a_consistency_proof(
    case: tuple[int, int], where: int, bit: int, target: int
) -> None:
    m, n = case
    proof = consistency_proof(LEAVES, m, n)
    root_m, root_n = ROOTS[m], ROOTS[n]
    if target == 0 and proof:
        i = where % len(proof)
        proof = [*proof[:i], flip(proof[i], where // len(proof), bit), *proof[i + 1 :]]
    elif target == 1:
        root_m = flip(root_m, where, bit)
    else:
        root_n = flip(root_n, where, bit)
    if (proof, root_m, root_n) == (consistency_proof(LEAVES, m, n), ROOTS[m], ROOTS[n]):
        return
    with pytest.raises(ProofError):
        verify_consistency(m, n, root_m, root_n, proof)


@FAST
@given(two_sizes(), two_sizes())
def test_a_consistency_proof_does_not_prove_other_sizes(
    case: tuple[int, int], other: tuple[int, int]
) -> None:
    m, n = case
    m2, n2 = other
    proof = consistency_proof(LEAVES, m, n)
    if (m, n) == (m2, n2) or proof == consistency_proof(LEAVES, m2, n2):
        return
    with pytest.raises(ProofError):
        verify_consistency(m2, n2, ROOTS[m2], ROOTS[n2], proof)


@FAST
@given(two_sizes())
def test_a_forked_tree_is_not_consistent(case: tuple[int, int]) -> None:
    m, n = case
    forked = [*LEAVES[: m - 1], leaf_hash(b"rewritten history"), *LEAVES[m:n]]
    proof = consistency_proof(forked, m, n)
    with pytest.raises(ProofError):
        verify_consistency(m, n, ROOTS[m], root_from_leaf_hashes(forked), proof)


@FAST
@given(st.integers(1, 2**64 - 1), st.data())
def test_proofs_of_huge_trees_need_few_stored_nodes(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    m = data.draw(st.integers(1, size))
    bound = 2 * size.bit_length() + 2
    inclusion = inclusion_proof_nodes(index, size)
    consistency = consistency_proof_nodes(m, size)
    assert len(inclusion) <= 64 and len(consistency) <= 65
    assert len(node_ids(inclusion)) <= bound
    assert len(node_ids(consistency)) <= bound
    for node in [*inclusion, *consistency]:
        assert node.end <= size
        sizes = [part.end - part.begin for part in node.parts]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


_LEVEL_HASHES = [leaf_hash(b"same")]
for _ in range(64):
    _LEVEL_HASHES.append(node_hash(_LEVEL_HASHES[-1], _LEVEL_HASHES[-1]))


def _uniform_store(node: NodeId) -> bytes:
    """A consistent node store for a tree of 2**64 identical leaves, in O(1) per read."""
    return _LEVEL_HASHES[node.level]


@FAST
@given(st.integers(1, 2**64 - 1), st.data())
def test_proofs_of_huge_trees_verify(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    m = data.draw(st.integers(1, size))
    root = root_from_reader(_uniform_store, size)
    proof = inclusion_proof(_uniform_store, index, size)
    verify_inclusion(_LEVEL_HASHES[0], index, size, proof, root)
    proof = consistency_proof(_uniform_store, m, size)
    verify_consistency(m, size, root_from_reader(_uniform_store, m), root, proof)


def test_appends_complete_every_perfect_subtree_exactly_once() -> None:
    compact = CompactRange()
    stored: dict[NodeId, bytes] = {}
    for size in range(1, MAX + 1):
        for node, digest in compact.append(LEAVES[size - 1]):
            assert node not in stored
            assert digest == root_from_leaf_hashes(LEAVES[node.begin : node.end])
            stored[node] = digest
        assert compact.size == size
        assert compact.root() == ROOTS[size]
    perfect = {NodeId(level, i) for level in range(7) for i in range(MAX >> level)}
    assert set(stored) == perfect


@FAST
@given(st.integers(0, MAX - 1), st.integers(0, MAX))
def test_a_compact_range_restored_from_storage_keeps_growing_the_same_tree(
    start: int, more: int
) -> None:
    restored = CompactRange.from_reader(TREE.read, start)
    assert restored.root() == ROOTS[start]
    end = min(MAX, start + more)
    for node, digest in restored.extend(LEAVES[start:end]):
        assert TREE.read(node) == digest
    assert restored.root() == ROOTS[end]
    assert len(restored.hashes) == len(edge_nodes(end))


def test_invalid_generation_arguments_are_range_errors() -> None:
    for index, size in [(0, 0), (3, 3), (-1, 4), (0, 2**64)]:
        with pytest.raises(TreeRangeError):
            inclusion_proof(TREE.read, index, size)
    for m, n in [(0, 4), (5, 4), (0, 0), (-1, 3)]:
        with pytest.raises(TreeRangeError):
            consistency_proof(TREE.read, m, n)
    with pytest.raises(TreeRangeError):
        inclusion_proof(LEAVES[:3], 0, 4)
    with pytest.raises(TreeRangeError):
        TREE.root(MAX + 1)
    with pytest.raises(TreeRangeError):
        TREE.read(NodeId(0, MAX))
    with pytest.raises(TreeRangeError):
        CompactRange.from_hashes(3, [ROOTS[2]])
    with pytest.raises(TreeRangeError):
        CompactRange().append(b"short")


def test_malformed_verification_input_is_a_proof_error() -> None:
    proof = inclusion_proof(LEAVES, 1, 4)
    leaf, root = LEAVES[1], ROOTS[4]
    bad_calls = [
        (leaf[:31], 1, 4, proof, root),
        (leaf, 1, 4, proof, root + b"\x00"),
        (leaf, 1, 4, [*proof[:1], proof[1][:16]], root),
        (leaf, True, 4, proof, root),
        (leaf, -1, 4, proof, root),
        (leaf, 1, 2**64, proof, root),
        (leaf, 1, 4, [root] * 66, root),
        (leaf, 4, 4, proof, root),
    ]
    for args in bad_calls:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    with pytest.raises(ProofError):
        verify_consistency(0, 0, ROOTS[1], ROOTS[1], [])
    verify_consistency(0, 0, ROOTS[0], ROOTS[0], [])
    with pytest.raises(ProofError):
        verify_consistency(2, 2, ROOTS[2], ROOTS[2], [ROOTS[1]])
