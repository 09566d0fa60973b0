"""The prefix tree: roots against a naive reference, proofs, epoch updates, and every refusal."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.keydir.errors import DuplicateIndex, KeyDirFormatError, KeyDirProofError
from clearpost.core.keydir.prefix_proof import (
    ABSENT_EMPTY,
    ABSENT_LEAF,
    INCLUDED,
    PrefixProof,
    SearchResult,
)
from clearpost.core.keydir.tree import (
    EMPTY,
    PrefixTree,
    leaf_hash,
    parent_hash,
    prove_update,
    verify_prefix_proof,
    verify_update,
)

Pair = tuple[bytes, bytes]


def naive_root(pairs: list[Pair], depth: int = 0) -> bytes:
    """The documented shape, spelled out: split on each bit; one leaf is the leaf itself."""
    if not pairs:
        return EMPTY
    if len(pairs) == 1:
        return leaf_hash(*pairs[0])
    bit = [(int.from_bytes(k, "big") >> (255 - depth)) & 1 for k, _ in pairs]
    left = [p for p, b in zip(pairs, bit, strict=True) if not b]
    right = [p for p, b in zip(pairs, bit, strict=True) if b]
    return parent_hash(naive_root(left, depth + 1), naive_root(right, depth + 1))


def h(tag: str) -> bytes:
    return hashlib.sha256(tag.encode()).digest()


def clustered(rng: random.Random, n: int) -> list[Pair]:
    """Indexes that share long prefixes, so unary chains and deep leaves occur."""
    base = rng.randbytes(32)
    out = {}
    while len(out) < n:
        keep = rng.choice([0, 1, 2, 5, 16, 31])
        out[base[:keep] + rng.randbytes(32 - keep)] = rng.randbytes(32)
    return list(out.items())


indexes = st.binary(min_size=32, max_size=32)
leaf_sets = st.dictionaries(indexes, st.binary(min_size=32, max_size=32), max_size=40)


@settings(max_examples=60, deadline=None)
@given(leaf_sets, leaf_sets, st.lists(indexes, max_size=6))
def test_roots_proofs_and_updates_match_the_reference(
    first: dict[bytes, bytes], second: dict[bytes, bytes], probes: list[bytes]
) -> None:
    second = {k: v for k, v in second.items() if k not in first}
    tree = PrefixTree.from_leaves(first.items())
    assert tree.root() == naive_root(list(first.items()))
    proof = prove_update(tree, second)
    old = tree.root()
    new = tree.insert_many(second.items())
    everything = {**first, **second}
    assert new == naive_root(list(everything.items()))
    assert new == PrefixTree.from_leaves(everything.items()).root()
    verify_update(old, new, PrefixProof.from_bytes(proof.to_bytes()), second)
    searched = list(everything)[:4] + probes
    expected = {k: everything.get(k) for k in searched}
    batch = tree.prove(searched)
    verify_prefix_proof(new, PrefixProof.from_bytes(batch.to_bytes()), expected)
    verify_prefix_proof(new, PrefixProof.from_json(batch.to_json()), expected)


def test_insertion_order_does_not_matter() -> None:
    rng = random.Random(7)
    pairs = clustered(rng, 300)
    one_go = PrefixTree.from_leaves(pairs)
    grown = PrefixTree.from_leaves(pairs[:10])
    for start in range(10, 300, 37):
        grown.insert_many(pairs[start : start + 37])
    assert grown.root() == one_go.root() == naive_root(pairs)
    assert list(grown.leaves()) == sorted(pairs)


def test_empty_and_single_leaf_trees() -> None:
    empty = PrefixTree()
    assert empty.root() == EMPTY
    proof = empty.prove([h("a")])
    assert proof.results == (SearchResult(ABSENT_EMPTY, 0),)
    verify_prefix_proof(EMPTY, proof, {h("a"): None})
    one = PrefixTree.from_leaves([(h("a"), h("v"))])
    assert one.root() == leaf_hash(h("a"), h("v"))
    verify_prefix_proof(one.root(), one.prove([h("a")]), {h("a"): h("v")})
    verify_prefix_proof(one.root(), one.prove([h("b")]), {h("b"): None})


def _tree() -> tuple[PrefixTree, list[Pair]]:
    pairs = clustered(random.Random(3), 64)
    return PrefixTree.from_leaves(pairs), pairs


def test_a_proof_does_not_prove_another_value_or_absence() -> None:
    tree, pairs = _tree()
    index, value = pairs[0]
    proof = tree.prove([index])
    with pytest.raises(KeyDirProofError):
        verify_prefix_proof(tree.root(), proof, {index: h("other")})
    with pytest.raises(KeyDirProofError, match="should be absent"):
        verify_prefix_proof(tree.root(), proof, {index: None})
    with pytest.raises(KeyDirProofError):
        verify_prefix_proof(h("another root"), proof, {index: value})
    absent = tree.prove([h("nobody")])
    with pytest.raises(KeyDirProofError, match="should be present"):
        verify_prefix_proof(tree.root(), absent, {h("nobody"): value})
    with pytest.raises(KeyDirProofError):
        verify_prefix_proof(tree.root(), absent, {index: None})


def test_a_tampered_proof_is_refused() -> None:
    tree, pairs = _tree()
    searched = [pairs[0][0], pairs[1][0], h("x"), h("y")]
    expected = {k: tree.get(k) for k in searched}
    proof = tree.prove(searched)
    verify_prefix_proof(tree.root(), proof, expected)
    tampered = [
        PrefixProof(proof.results, proof.copath[:-1]),
        PrefixProof(proof.results, (*proof.copath, h("extra"))),
        PrefixProof(proof.results[:-1], proof.copath),
        PrefixProof(proof.results, (h("swap"), *proof.copath[1:])),
        PrefixProof(
            (replace(proof.results[0], depth=proof.results[0].depth + 1), *proof.results[1:]),
            proof.copath,
        ),
    ]
    for bad in tampered:
        with pytest.raises(KeyDirProofError):
            verify_prefix_proof(tree.root(), bad, expected)


def test_a_leaf_off_the_path_cannot_prove_absence() -> None:
    tree, pairs = _tree()
    target, proof = next(
        (t, p)
        for t, p in ((h(f"missing{i}"), tree.prove([h(f"missing{i}")])) for i in range(100))
        if p.results[0].kind == ABSENT_LEAF
    )
    verify_prefix_proof(tree.root(), proof, {target: None})
    result = proof.results[0]
    far = next(k for k, _ in pairs if k[0] != target[0])
    forged = SearchResult(ABSENT_LEAF, result.depth, far, tree.get(far))
    with pytest.raises(KeyDirProofError, match="not on its path"):
        verify_prefix_proof(tree.root(), PrefixProof((forged,), proof.copath), {target: None})


def test_non_canonical_shapes_are_refused() -> None:
    """A parent of a lone leaf and the empty node is never in an honest tree."""
    a = bytes(32)
    root = parent_hash(leaf_hash(a, h("v")), EMPTY)
    proof = PrefixProof((SearchResult(INCLUDED, 1),), (None,))
    with pytest.raises(KeyDirProofError, match="canonical"):
        verify_prefix_proof(root, proof, {a: h("v")})


def test_duplicates_are_refused_and_nothing_changes() -> None:
    tree, pairs = _tree()
    root = tree.root()
    with pytest.raises(DuplicateIndex):
        tree.insert_many([(h("new"), h("v")), (pairs[3][0], h("other value"))])
    with pytest.raises(DuplicateIndex):
        tree.insert_many([(h("new"), h("v")), (h("new"), h("w"))])
    assert tree.root() == root and len(tree) == len(pairs) and tree.get(h("new")) is None
    with pytest.raises(DuplicateIndex):
        PrefixTree.from_leaves([(h("a"), h("v")), (h("a"), h("w"))])
    with pytest.raises(ValueError):
        tree.insert_many([(b"short", h("v"))])


def test_an_update_that_changes_or_drops_a_leaf_is_refused() -> None:
    tree, pairs = _tree()
    old = tree.root()
    new_leaves = {h(f"new{i}"): h(f"v{i}") for i in range(5)}
    proof = prove_update(tree, new_leaves)
    honest = PrefixTree.from_leaves([*pairs, *new_leaves.items()]).root()
    verify_update(old, honest, proof, new_leaves)
    # an existing version changed in place
    changed = [(k, h("changed") if i == 7 else v) for i, (k, v) in enumerate(pairs)]
    in_place = PrefixTree.from_leaves([*changed, *new_leaves.items()]).root()
    with pytest.raises(KeyDirProofError, match="new root"):
        verify_update(old, in_place, proof, new_leaves)
    # one leaf removed
    dropped = PrefixTree.from_leaves([*pairs[1:], *new_leaves.items()]).root()
    with pytest.raises(KeyDirProofError, match="new root"):
        verify_update(old, dropped, proof, new_leaves)
    # a leaf added that the auditor is not told about
    extra = PrefixTree.from_leaves([*pairs, *new_leaves.items(), (h("hidden"), h("v"))]).root()
    with pytest.raises(KeyDirProofError, match="new root"):
        verify_update(old, extra, proof, new_leaves)
    # "inserting" an existing index with a new value
    existing = {pairs[0][0]: h("replacement")}
    replaced = PrefixTree.from_leaves([(k, existing.get(k, v)) for k, v in pairs]).root()
    with pytest.raises(KeyDirProofError):
        verify_update(old, replaced, tree.prove(existing), existing)
    # the proof must cover every inserted index
    with pytest.raises(KeyDirProofError):
        verify_update(old, honest, prove_update(tree, list(new_leaves)[:4]), new_leaves)


def test_proof_bytes_layout_and_malformed_bytes() -> None:
    leaf = SearchResult(ABSENT_LEAF, 3, h("i"), h("v"))
    proof = PrefixProof((SearchResult(INCLUDED, 2), leaf), (None, h("c"), None))
    raw = proof.to_bytes()
    assert raw == (
        b"\x00\x00\x00\x02"
        + b"\x01\x00\x02"
        + b"\x02\x00\x03"
        + h("i")
        + h("v")
        + b"\x00\x00\x00\x03"
        + bytes([0b10100000])
        + h("c")
    )
    assert PrefixProof.from_bytes(raw) == proof
    assert PrefixProof.from_json(proof.to_json()) == proof
    for bad in [
        raw[:-1],
        raw + b"\x00",
        raw[:-33] + bytes([0b10100001]) + h("c"),  # padding bit set
        b"\x00\x00\x00\x01\x07\x00\x00" + bytes(4),  # unknown kind
        b"\x00\x00\x00\x01\x00\x00\x00" + bytes(4),  # kind 0 (reserved, as in the draft)
        b"\x00\x00\x00\x01\x01\x01\x01" + bytes(4),  # depth 257
    ]:
        with pytest.raises(KeyDirFormatError):
            PrefixProof.from_bytes(bad)
    with pytest.raises(KeyDirFormatError):
        PrefixProof((), (EMPTY,))
    with pytest.raises(KeyDirFormatError):
        PrefixProof.from_json({"results": [{"kind": "included", "depth": "1"}], "copath": []})
    with pytest.raises(KeyDirFormatError):
        PrefixProof.from_json({"results": [], "copath": ["AB" * 32]})


def test_lookup_proof_size_is_logarithmic() -> None:
    rng = random.Random(11)
    pairs = [(rng.randbytes(32), rng.randbytes(32)) for _ in range(4096)]
    tree = PrefixTree.from_leaves(pairs)
    sizes = [len(tree.prove([k]).to_bytes()) for k, _ in pairs[:50]]
    # about log2(4096) = 12 copath hashes, not thousands
    assert max(sizes) < 25 * 32


def test_one_leaf_proves_its_own_presence_and_a_neighbours_absence() -> None:
    """Two searched paths that end at the same leaf: one included, one absent at it."""
    tree, pairs = _tree()
    index, value = pairs[5]
    neighbour = index[:31] + bytes([index[31] ^ 1])  # shares 255 bits, so ends at the leaf
    proof = tree.prove([index, neighbour])
    kinds = sorted(r.kind for r in proof.results)
    assert kinds == [INCLUDED, ABSENT_LEAF]
    verify_prefix_proof(tree.root(), proof, {index: value, neighbour: None})
    with pytest.raises(KeyDirProofError):
        verify_prefix_proof(tree.root(), proof, {index: value, neighbour: h("x")})
    with pytest.raises(KeyDirProofError):
        verify_prefix_proof(tree.root(), proof, {index: h("other"), neighbour: None})


def test_hashing_is_the_documented_one() -> None:
    """SHA-256 with 0x02 for leaves, 0x03 for parents, zeros for a missing child (the
    draft's prefix-tree values)."""

    def sha(*parts: bytes) -> bytes:
        return hashlib.sha256(b"".join(parts)).digest()

    a = bytes([0b0000_0000]) + bytes(31)
    b = bytes([0b0100_0000]) + bytes(31)
    c = bytes([0b1000_0000]) + bytes(31)
    va, vb, vc = h("a"), h("b"), h("c")
    leaf_a, leaf_b, leaf_c = sha(b"\x02", a, va), sha(b"\x02", b, vb), sha(b"\x02", c, vc)
    assert PrefixTree.from_leaves([(a, va), (c, vc)]).root() == sha(b"\x03", leaf_a, leaf_c)
    # a and b share their first bit: a parent at depth 1 with the two leaves under it
    expected = sha(b"\x03", sha(b"\x03", leaf_a, leaf_b), leaf_c)
    assert PrefixTree.from_leaves([(a, va), (b, vb), (c, vc)]).root() == expected
    # a and b alone: the root has no right child (zeros stand in)
    assert PrefixTree.from_leaves([(a, va), (b, vb)]).root() == sha(
        b"\x03", sha(b"\x03", leaf_a, leaf_b), bytes(32)
    )


def test_malformed_sizes_from_a_server_are_format_errors() -> None:
    """An auditor's inputs come off the wire: a bad size is a 4xx-class verdict, not a crash."""
    tree, _ = _tree()
    proof = prove_update(tree, [h("n")])
    with pytest.raises(KeyDirFormatError):
        verify_update(tree.root(), tree.root(), proof, {b"short": h("v")})
    with pytest.raises(KeyDirFormatError):
        verify_update(tree.root(), tree.root(), proof, {h("n"): b"short"})
    with pytest.raises(KeyDirFormatError):
        verify_prefix_proof(tree.root(), proof, {h("n"): b"short"})


def test_only_large_subtrees_keep_their_hash_and_proofs_stay_right() -> None:
    """Hashes are kept for subtrees of ``KEPT_FROM`` leaves or more (memory); the smaller
    ones are hashed again for a proof or an insert, and give the same roots and proofs."""
    rng = random.Random(11)
    pairs = clustered(rng, 600) + [(rng.randbytes(32), rng.randbytes(32)) for _ in range(1400)]
    tree = PrefixTree.from_leaves(pairs[:100])
    for start in range(100, len(pairs), 300):
        batch = pairs[start : start + 300]
        tree.insert_many(batch)
        held = pairs[: start + len(batch)]
        assert tree.root() == PrefixTree.from_leaves(held).root()
        probes = [k for k, _ in rng.sample(held, 10)] + [rng.randbytes(32) for _ in range(5)]
        expected = {k: dict(held).get(k) for k in probes}
        verify_prefix_proof(tree.root(), tree.prove(probes), expected)
    assert tree.root() == naive_root(pairs)
    assert 0 < len(tree._branch) < len(tree) / 3  # about one kept hash per 5.5 leaves
    assert all(isinstance(h, bytes) and len(h) == 32 for h in tree._branch.values())


def test_indexes_that_share_their_first_64_bits_or_nearly() -> None:
    """The tree compares indexes by their first 64 bits and reads the rest only when those
    are equal: leaves that part at bits 62-66, 127 and 255 give the reference's roots and
    proofs, are found, and a repeated index among them is refused."""
    rng = random.Random(5)
    base = int.from_bytes(rng.randbytes(32), "big")
    pairs: dict[bytes, bytes] = {}
    for bit in (62, 63, 64, 65, 66, 127, 255):
        for flip in range(3):
            k = base ^ (1 << (255 - bit)) ^ (flip << max(0, 250 - bit))
            pairs[k.to_bytes(32, "big")] = rng.randbytes(32)
    pairs[base.to_bytes(32, "big")] = rng.randbytes(32)
    items = list(pairs.items())
    tree = PrefixTree.from_leaves(items)
    assert tree.root() == naive_root(items)
    grown = PrefixTree.from_leaves(items[::2])
    grown.insert_many(items[1::2])
    assert grown.root() == tree.root()
    assert list(grown.leaves()) == sorted(items)
    for k, v in items:
        assert tree.get(k) == v
    near = [(int.from_bytes(k, "big") ^ 1).to_bytes(32, "big") for k, _ in items[:5]]
    expected = {**{k: v for k, v in items[:5]}, **{k: pairs.get(k) for k in near}}
    verify_prefix_proof(tree.root(), tree.prove(expected), expected)
    same_top = (base ^ (1 << 100)).to_bytes(32, "big")  # no leaf, but its first 64 bits are base's
    with pytest.raises(DuplicateIndex):
        PrefixTree.from_leaves([*items, (items[-1][0], h("w")), (same_top, h("v"))])
    with pytest.raises(DuplicateIndex):
        tree.insert_many([(same_top, h("v")), (items[-1][0], h("w"))])
    assert tree.get(same_top) is None and tree.root() == naive_root(items)
