"""Known-answer tests: the RFC 6962 reference tree, its proofs and published probes.

Vectors live in tests/vectors/tlog/ (see its README for sources).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from clearpost.core.tlog import (
    EMPTY_ROOT,
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
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "tlog"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


TREE = load("rfc6962_tree.json")
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in TREE["leaves"]]
ROOTS = [bytes.fromhex(x) for x in TREE["roots"]]


def hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in values]


def test_the_eight_standard_leaves_are_the_ct_leaves() -> None:
    assert TREE["leaves"] == [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT == ROOTS[0]
    assert MemoryTree().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_for_sizes_0_to_8(size: int) -> None:
    tree = MemoryTree(LEAVES)
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]
    assert tree.root(size) == ROOTS[size]
    compact = CompactRange()
    compact.extend(LEAVES[:size])
    assert compact.root() == ROOTS[size]


def test_every_perfect_subtree_hash_matches() -> None:
    tree = MemoryTree(LEAVES)
    for level, row in enumerate(TREE["node_hashes"]):
        for index, expected in enumerate(row):
            assert tree.read(NodeId(level, index)) == bytes.fromhex(expected)


@pytest.mark.parametrize("size", range(9))
def test_compact_range_holds_the_published_edge_nodes(size: int) -> None:
    compact = CompactRange()
    compact.extend(LEAVES[:size])
    nodes = TREE["node_hashes"]
    expected = [bytes.fromhex(nodes[n.level][n.index]) for n in edge_nodes(size)]
    assert list(compact.hashes) == expected


@pytest.mark.parametrize("case", TREE["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_published_inclusion_proofs(case: dict[str, Any]) -> None:
    index, size, expected = case["index"], case["size"], hexes(case["proof"])
    tree = MemoryTree(LEAVES)
    assert inclusion_proof(LEAVES, index, size) == expected
    assert inclusion_proof(tree.read, index, size) == expected
    verify_inclusion(LEAVES[index], index, size, expected, ROOTS[size])


@pytest.mark.parametrize("case", TREE["consistency"], ids=lambda c: f"{c['m']}-{c['n']}")
def test_published_consistency_proofs(case: dict[str, Any]) -> None:
    m, n, expected = case["m"], case["n"], hexes(case["proof"])
    tree = MemoryTree(LEAVES)
    assert consistency_proof(LEAVES, m, n) == expected
    assert consistency_proof(tree.read, m, n) == expected
    verify_consistency(m, n, ROOTS[m], ROOTS[n], expected)


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "")


def _b64_list(values: list[str] | None) -> list[bytes]:
    return [_b64(v) for v in values or []]


# Where we are deliberately stricter than transparency-dev/merkle: it accepts equal
# sizes with equal roots of any length; we require every hash to be 32 bytes.
STRICTER = {"testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"}


@pytest.mark.parametrize(
    "probe", load("inclusion_probes.json")["probes"], ids=lambda p: p["file"][9:]
)
def test_inclusion_probes(probe: dict[str, Any]) -> None:
    args = (
        _b64(probe["leafHash"]),
        probe["leafIdx"],
        probe["treeSize"],
        _b64_list(probe["proof"]),
        _b64(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "probe", load("consistency_probes.json")["probes"], ids=lambda p: p["file"][9:]
)
def test_consistency_probes(probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        _b64(probe["root1"]),
        _b64(probe["root2"]),
        _b64_list(probe["proof"]),
    )
    if probe["wantErr"] or probe["file"] in STRICTER:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_the_stricter_probe_passes_once_its_roots_are_real_hashes() -> None:
    root = ROOTS[1]
    verify_consistency(1, 1, root, root, [])


NODES = load("proof_nodes.json")


def _as_parts(proof: list[Any]) -> list[list[tuple[int, int]]]:
    return [[(p.level, p.index) for p in node.parts] for node in proof]


def _expected_parts(nodes: list[list[list[int]]]) -> list[list[tuple[int, int]]]:
    return [[(level, index) for level, index in node] for node in nodes]


@pytest.mark.parametrize("case", NODES["inclusion"], ids=lambda c: f"{c['index']}@{c['size']}")
def test_inclusion_proof_node_addresses(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(TreeRangeError):
            inclusion_proof_nodes(case["index"], case["size"])
        return
    got = inclusion_proof_nodes(case["index"], case["size"])
    assert _as_parts(got) == _expected_parts(case["nodes"])


@pytest.mark.parametrize("case", NODES["consistency"], ids=lambda c: f"{c['m']}-{c['n']}")
def test_consistency_proof_node_addresses(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(TreeRangeError):
            consistency_proof_nodes(case["m"], case["n"])
        return
    got = consistency_proof_nodes(case["m"], case["n"])
    assert _as_parts(got) == _expected_parts(case["nodes"])
