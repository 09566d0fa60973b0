"""``bench/akd_size.py``'s walk of akd's Patricia trie, against a trie built the plain way
(recursively, node by node) over the same random leaves. The bench sizes akd's lookup proof
at 1M leaves from these paths, so a wrong walk would be a wrong peer number. (Its wire
rules are checked against akd's own test vectors by the bench, ``--akd-vector``.)"""

from __future__ import annotations

import random

import pytest

from bench.akd_size import Label, Path, Trie, _prefix


def _bits(index: bytes) -> str:
    return "".join(f"{b:08b}" for b in index)


def plain_paths(indexes: list[bytes]) -> dict[bytes, Path]:
    """Every leaf's path in a trie built by splitting the set by bits, node by node."""
    paths: dict[bytes, Path] = {}

    def label(group: list[bytes]) -> Label:
        if len(group) == 1:
            return Label(group[0], 256)
        first, last = _bits(min(group)), _bits(max(group))
        common = next(k for k in range(256) if first[k] != last[k])
        return _prefix(group[0], common)

    def down(group: list[bytes], node: Label, steps: tuple[tuple[Label, Label, int], ...]) -> None:
        if len(group) == 1:
            paths[group[0]] = Path(node, steps)
            return
        halves = [[i for i in group if _bits(i)[node.length] == str(b)] for b in (0, 1)]
        for go in (0, 1):
            child, other = halves[go], halves[1 - go]
            down(child, label(child), (*steps, (node, label(other), go)))

    down(indexes, Label(b"", 0), ())
    return paths


@pytest.mark.parametrize("seed", range(5))
def test_every_path_is_the_plain_tries(seed: int) -> None:
    rng = random.Random(seed)
    # random leaves, and some that share long prefixes (deep, lopsided subtrees)
    indexes = {rng.randbytes(32) for _ in range(150)}
    base = rng.randbytes(32)
    indexes |= {base[:k] + rng.randbytes(32 - k) for k in (1, 2, 5, 31) for _ in range(4)}
    ordered = sorted(indexes)
    trie = Trie(ordered)
    for index, path in plain_paths(ordered).items():
        assert trie.path(index) == path


def test_an_absence_stops_at_the_deepest_node_whose_label_is_a_prefix() -> None:
    rng = random.Random(7)
    ordered = sorted({rng.randbytes(32) for _ in range(100)})
    trie = Trie(ordered)
    plain = plain_paths(ordered)
    for _ in range(50):
        missing = rng.randbytes(32)
        absence = trie.absence(missing)
        node = absence.node.to
        assert _prefix(missing, node.length) == node
        # below the node, the leaves nearest the missing one part from it
        for child in absence.children:
            assert child.length > node.length
            assert _prefix(missing, child.length) != child
        # the node's path is the start of its leaves' paths
        under = [i for i in ordered if _prefix(i, node.length) == node]
        steps = plain[under[0]].steps
        assert absence.node.steps == steps[: len(absence.node.steps)]
        assert steps[len(absence.node.steps)][0] == node
    with pytest.raises(KeyError):
        trie.absence(ordered[3])
    with pytest.raises(KeyError):
        trie.path(rng.randbytes(32))
