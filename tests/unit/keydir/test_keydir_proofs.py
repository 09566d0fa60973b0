"""Lookup, absence and history bundles: made from a real tree and VRF, checked, and forged."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from clearpost.core.keydir.commit import commit, label_input
from clearpost.core.keydir.errors import KeyDirFormatError, KeyDirProofError, VrfInvalid
from clearpost.core.keydir.proofs import (
    ABSENT,
    Bundle,
    check_absence,
    check_history,
    check_lookup,
    check_lookup_since,
    history_absent,
    history_shown,
    index_of,
    lookup_ladder,
    lookup_since,
    make_bundle,
    prove_absence,
    prove_history,
    prove_lookup,
    verify_bundle,
)
from clearpost.core.keydir.tree import PrefixTree
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash

KEY = VrfSecretKey.from_seed(bytes(range(32)))
PK = KEY.public_key


@dataclass(frozen=True)
class Version:
    version: int
    vrf_proof: bytes
    opening: bytes
    value: bytes


def versions_of(label: bytes, count: int) -> list[Version]:
    return [
        Version(
            v,
            KEY.prove(label_input(label, v)),
            bytes([v + 1]) * 16,
            b'[{"device_id":"D%d"}]' % v,
        )
        for v in range(count)
    ]


def leaves(label: bytes, versions: list[Version]) -> list[tuple[bytes, bytes]]:
    return [
        (index_of(proof_to_hash(v.vrf_proof)), commit(v.opening, label, v.version, v.value))
        for v in versions
    ]


ALICE = b"devices:@alice:example.org"
BOB = b"devices:@bob:example.org"


def directory(alice_versions: int = 6) -> tuple[PrefixTree, list[Version], list[Version]]:
    alice = versions_of(ALICE, alice_versions)
    bob = versions_of(BOB, 1)
    filler = [(bytes([i]) * 32, bytes([255 - i]) * 32) for i in range(40)]
    tree = PrefixTree.from_leaves(leaves(ALICE, alice) + leaves(BOB, bob) + filler)
    return tree, alice, bob


def test_ladder_shows_n_and_n_plus_one_and_separates_any_two_claims() -> None:
    assert lookup_ladder(0) == ([0], [1])
    assert lookup_ladder(1) == ([1], [2, 3])
    assert lookup_ladder(3) == ([1, 3], [4, 5, 7])
    assert lookup_ladder(10) == ([1, 3, 7, 9, 10], [11, 15])
    assert lookup_ladder(6) == ([1, 3, 5, 6], [7])  # the draft's own example, without 0
    top = 2**32 - 1  # the greatest version there can be: nothing above it to show absent
    assert lookup_ladder(top) == ([2**k - 1 for k in range(1, 33)], [])
    assert lookup_ladder(top - 1)[1] == [top]
    with pytest.raises(ValueError):
        lookup_ladder(2**32)
    for n in range(70):
        present, absent = lookup_ladder(n)
        assert n in present and n + 1 in absent
        assert all(v <= n for v in present) and all(v > n for v in absent)
        for m in range(n + 1, 70):
            p2, _ = lookup_ladder(m)
            assert set(absent) & set(p2), (n, m)  # some version both show, differently
    for m in range(70):  # and the absence proof: no version at all
        assert set(ABSENT) & set(lookup_ladder(m)[0]), m


@pytest.mark.parametrize("count", [1, 2, 3, 6])
def test_lookup_verifies_and_returns_the_greatest_version(count: int) -> None:
    tree, alice, _ = directory(count)
    bundle = prove_lookup(tree, KEY, ALICE, alice)
    assert check_lookup(PK, tree.root(), bundle) == (count - 1, alice[-1].value)
    again = Bundle.from_json(bundle.to_json())
    assert check_lookup(PK, tree.root(), again) == (count - 1, alice[-1].value)
    assert Bundle.from_bytes(bundle.to_bytes()) == bundle


def test_history_and_absence() -> None:
    tree, alice, _ = directory(4)
    history = prove_history(tree, KEY, ALICE, alice)
    assert check_history(PK, tree.root(), history) == [v.value for v in alice]
    nobody = prove_absence(tree, KEY, b"devices:@nobody:example.org")
    check_absence(PK, tree.root(), nobody)
    assert check_history(PK, tree.root(), prove_history(tree, KEY, b"devices:@x:y", [])) == []
    assert prove_lookup(tree, KEY, b"devices:@x:y", []).absent[0][0] == 0


def test_a_history_shows_absent_every_version_a_later_lookup_needs_present() -> None:
    """The owner's check catches any greatest version above its own: a lookup of ``m > n``
    shows present a version that the history of ``0..n`` shows absent."""
    assert history_absent(-1) == [0, 1]
    assert history_absent(1) == [2, 3]
    assert history_absent(3) == [4, 5, 7]
    for n in range(200):
        assert n + 1 in history_absent(n)
        for m in range(n + 1, 400):
            assert set(history_absent(n)) & set(lookup_ladder(m)[0]), (n, m)


def test_a_history_from_a_version_the_device_verified_before() -> None:
    """``since``: only the versions after it are shown (and opened), none while it is still
    the greatest; the ladder's absent versions always are; a label that went back below
    ``since`` shows its greatest version."""
    assert history_shown(5) == [0, 1, 2, 3, 4, 5] and history_shown(-1) == []
    assert history_shown(5, since=2) == [3, 4, 5]
    assert history_shown(5, since=5) == [] and history_shown(-1, since=0) == []
    assert history_shown(2, since=5) == [2]
    tree, alice, _ = directory(6)
    later = prove_history(tree, KEY, ALICE, alice, since=3)
    assert [p.version for p in later.present] == [4, 5]
    assert sorted(v for v, _ in later.absent) == history_absent(5)
    assert check_history(PK, tree.root(), later, since=3) == [v.value for v in alice[4:]]
    assert len(later.to_bytes()) < len(prove_history(tree, KEY, ALICE, alice).to_bytes())
    # still the greatest: no version shown, only the absent ones; the device keeps its value
    still = prove_history(tree, KEY, ALICE, alice, since=5)
    assert still.present == [] and sorted(v for v, _ in still.absent) == history_absent(5)
    assert check_history(PK, tree.root(), still, since=5) == []
    assert len(still.to_bytes()) < len(later.to_bytes())
    # ... which does not pass for a device that verified less: it must see the new versions
    with pytest.raises(KeyDirProofError, match="must show"):
        check_history(PK, tree.root(), still, since=3)
    # a full history is not what a device asking from 3 accepts, nor the reverse
    with pytest.raises(KeyDirProofError, match="must show"):
        check_history(PK, tree.root(), prove_history(tree, KEY, ALICE, alice), since=3)
    with pytest.raises(KeyDirProofError, match="must show"):
        check_history(PK, tree.root(), later)
    # the server shows only versions 0..2 to a device that verified 5: it sees 2 as greatest
    tree3, alice3, _ = directory(3)
    back = prove_history(tree3, KEY, ALICE, alice3, since=5)
    assert [p.version for p in back.present] == [2]
    assert check_history(PK, tree3.root(), back, since=5) == [alice3[2].value]
    # and "nothing new" cannot be claimed from a tree that lacks the versions above 2
    with pytest.raises(KeyDirProofError):
        check_history(PK, tree3.root(), prove_history(tree3, KEY, ALICE, alice3, since=2), since=5)


def test_versions_skipped_ahead_for_a_contact_fail_the_owners_history() -> None:
    """The server adds versions 3 and 4 to Alice's label (she made 0 and 1), skipping 2, and
    gives Bob a valid lookup of version 4 (its ladder: 1, 3, 4 present; 5, 7 absent). The
    history Alice's device checks must show 3 absent, which the tree cannot prove; a history
    with only 2 absent (the next version) would have passed."""
    ghost = versions_of(ALICE, 5)
    made, skipped = ghost[:2], [ghost[3], ghost[4]]
    tree = PrefixTree.from_leaves(leaves(ALICE, made + skipped))
    lookup = make_bundle(tree, KEY, ALICE, made[1:] + skipped, [5, 7], [4])
    assert check_lookup(PK, tree.root(), lookup)[0] == 4  # Bob sees version 4
    with pytest.raises(KeyDirProofError):
        check_history(PK, tree.root(), prove_history(tree, KEY, ALICE, made))
    only_next = make_bundle(tree, KEY, ALICE, made, [2], [0, 1])
    with pytest.raises(KeyDirProofError, match="must show"):
        check_history(PK, tree.root(), only_next)


def test_a_lookup_without_version_0_cannot_stand_beside_an_absence_proof() -> None:
    """Lookups past version 0 do not show it, so a server could build a tree with Alice's
    version 1 and not her version 0, and show Bob version 1 as her greatest. It then cannot
    also tell Carol, in that epoch, that Alice has no account: the absence proof must show
    version 1 absent. With version 0 alone (the draft's absence proof) it could have."""
    alice = versions_of(ALICE, 2)
    tree = PrefixTree.from_leaves(leaves(ALICE, alice[1:]))
    lookup = make_bundle(tree, KEY, ALICE, alice[1:], [2, 3], [1])
    assert check_lookup(PK, tree.root(), lookup)[0] == 1  # Bob sees version 1
    with pytest.raises(KeyDirProofError):
        check_absence(PK, tree.root(), prove_absence(tree, KEY, ALICE))
    zero_alone = make_bundle(tree, KEY, ALICE, [], [0], [])
    verify_bundle(PK, tree.root(), zero_alone)  # true of this tree, and not enough
    with pytest.raises(KeyDirProofError, match="must show"):
        check_absence(PK, tree.root(), zero_alone)


def test_a_repeat_lookup_leaves_out_the_ladder_versions_the_asker_has_seen() -> None:
    """Someone who verified version ``k`` sees only the ladder versions above it, and every
    absent one; the ones left out are ladder versions of ``k`` itself."""
    assert lookup_since(10, 10) == ([], [11, 15])
    assert lookup_since(10, 3) == ([7, 9, 10], [11, 15])
    assert lookup_since(2, 1) == ([2], [3])
    with pytest.raises(KeyDirFormatError):
        lookup_since(3, 4)
    for k in range(300):
        seen = set(lookup_ladder(k)[0])
        for n in range(k, 600):
            present, absent = lookup_ladder(n)
            assert {v for v in present if v <= k} <= seen, (k, n)
            assert lookup_since(n, k) == ([v for v in present if v > k], absent)
    tree, alice, _ = directory(6)
    root = tree.root()
    same = prove_lookup(tree, KEY, ALICE, alice, since=5)
    assert check_lookup_since(PK, root, same, 5) == (5, None)  # still 5: nothing opened
    newer = prove_lookup(tree, KEY, ALICE, alice, since=2)
    assert check_lookup_since(PK, root, newer, 2) == (5, alice[5].value)
    full = prove_lookup(tree, KEY, ALICE, alice)
    assert len(same.to_bytes()) < len(newer.to_bytes()) < len(full.to_bytes())
    # a full lookup is not a repeat lookup's shape, nor the reverse
    with pytest.raises(KeyDirProofError, match="must show"):
        check_lookup_since(PK, root, full, 2)
    with pytest.raises(KeyDirProofError):
        check_lookup(PK, root, newer)


def test_a_repeat_lookup_cannot_go_back_or_hide_a_later_version() -> None:
    tree, alice, _ = directory(6)
    root = tree.root()
    # asked from 7 (seen on another, lying, occasion), the server can only show 5: refused
    with pytest.raises(KeyDirProofError, match="verified before"):
        check_lookup_since(PK, root, prove_lookup(tree, KEY, ALICE, alice, since=7), 7)
    # "still 3" when 4 and 5 exist: 3's ladder shows 4 absent, which the tree refutes
    stale = make_bundle(tree, KEY, ALICE, [], lookup_since(3, 3)[1], [])
    with pytest.raises(KeyDirProofError):
        check_lookup_since(PK, root, stale, 3)
    # two opened versions, or a new greatest one shown without its value
    two = make_bundle(tree, KEY, ALICE, [alice[4], alice[5]], [6, 7], [4, 5])
    with pytest.raises(KeyDirProofError, match="exactly one"):
        check_lookup_since(PK, root, two, 3)
    unopened = make_bundle(tree, KEY, ALICE, [alice[5]], [6, 7], [])
    with pytest.raises(KeyDirProofError, match="must show"):
        check_lookup_since(PK, root, unopened, 3)


def test_an_older_version_is_not_the_greatest() -> None:
    """The server hides Alice's latest version: its lookup of version 4 shows 5 absent."""
    tree, alice, _ = directory(6)
    stale = make_bundle(tree, KEY, ALICE, alice[:5], [5, 7], [4])
    with pytest.raises(KeyDirProofError):
        check_lookup(PK, tree.root(), stale)
    # a true bundle for version 4 of a five-version label, but without the ladder's 7
    tree5, alice5, _ = directory(5)
    short = make_bundle(tree5, KEY, ALICE, [alice5[i] for i in (0, 1, 3, 4)], [5], [4])
    with pytest.raises(KeyDirProofError, match="must show"):
        check_lookup(PK, tree5.root(), short)


def test_a_value_that_is_not_committed_is_refused() -> None:
    tree, alice, _ = directory(2)
    bundle = prove_lookup(tree, KEY, ALICE, alice)
    lied = replace(bundle, present=[*bundle.present[:-1], replace(bundle.present[-1], value=b"[]")])
    with pytest.raises(KeyDirProofError, match="opening"):
        check_lookup(PK, tree.root(), lied)
    other = make_bundle(tree, KEY, ALICE, alice, [2, 3], [1])
    # a bundle that opens a different version than the one the shape needs
    with pytest.raises(KeyDirProofError):
        check_history(PK, tree.root(), other)


def test_another_labels_proof_or_key_is_refused() -> None:
    tree, _, bob = directory(1)
    bundle = prove_lookup(tree, KEY, BOB, bob)
    with pytest.raises(VrfInvalid):
        check_lookup(PK, tree.root(), replace(bundle, label=ALICE))
    other_key = VrfSecretKey.from_seed(bytes(32)).public_key
    with pytest.raises(VrfInvalid):
        check_lookup(other_key, tree.root(), bundle)
    with pytest.raises(KeyDirProofError):
        check_lookup(PK, PrefixTree().root(), bundle)


def test_malformed_bundles_are_format_errors() -> None:
    tree, alice, _ = directory(1)
    raw = prove_lookup(tree, KEY, ALICE, alice).to_bytes()
    for bad in [raw[:-1], raw + b"\x00", raw[:1]]:
        with pytest.raises(KeyDirFormatError):
            Bundle.from_bytes(bad)
    with pytest.raises(KeyDirFormatError):
        Bundle.from_json({"label": "x", "present": [], "absent": [], "proof": "!!"})
    with pytest.raises(KeyDirFormatError):
        Bundle.from_json({"label": 3, "present": [], "absent": [], "proof": ""})
