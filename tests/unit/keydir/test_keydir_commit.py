"""Commitments and the VRF input: the documented encoding, binding across every field."""

from __future__ import annotations

import hashlib

import pytest

from clearpost.core.keydir.commit import commit, label_input, new_opening


def test_label_input_layout() -> None:
    assert label_input(b"devices:@a:x", 0) == b"\x00\x0cdevices:@a:x\x00\x00\x00\x00"
    assert label_input(b"", 0x01020304) == b"\x00\x00\x01\x02\x03\x04"


def test_commit_is_the_documented_hash() -> None:
    opening = bytes(range(16))
    expected = hashlib.sha256(
        b"clearpost/keydir/commit/v1\x00"
        + b"\x10"
        + opening
        + b"\x00\x03lab\x00\x00\x00\x07"
        + b"\x00\x00\x00\x02[]"
    ).digest()
    assert commit(opening, b"lab", 7, b"[]") == expected


def test_every_field_changes_the_commitment() -> None:
    base = commit(bytes(16), b"devices:@a:x", 1, b"[]")
    assert commit(bytes(15) + b"\x01", b"devices:@a:x", 1, b"[]") != base
    assert commit(bytes(32), b"devices:@a:x", 1, b"[]") != base  # same prefix, longer opening
    assert commit(bytes(16), b"devices:@a:y", 1, b"[]") != base
    assert commit(bytes(16), b"devices:@a:x", 2, b"[]") != base
    assert commit(bytes(16), b"devices:@a:x", 1, b"[ ]") != base
    # label/value boundaries cannot be shifted
    assert commit(bytes(16), b"ab", 1, b"c") != commit(bytes(16), b"a", 1, b"bc")


@pytest.mark.parametrize(
    ("opening", "label", "version"),
    [
        (bytes(15), b"l", 0),
        (bytes(17), b"l", 0),
        (bytes(16), b"l", -1),
        (bytes(16), b"l", 2**32),
        (bytes(16), b"x" * 65536, 0),
    ],
)
def test_bad_inputs_are_refused(opening: bytes, label: bytes, version: int) -> None:
    with pytest.raises(ValueError):
        commit(opening, label, version, b"")


def test_new_opening_uses_the_given_randomness() -> None:
    assert new_opening(lambda n: b"\x07" * n) == b"\x07" * 16
    assert len(new_opening()) == 16
    assert new_opening() != new_opening()
    with pytest.raises(ValueError):
        new_opening(lambda n: bytes(n - 1))
