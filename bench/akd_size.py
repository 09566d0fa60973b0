"""The size of WhatsApp akd's lookup proof on a directory of any size: its protobuf wire
format (``akd_core/src/proto/specs/types.proto``) laid over a Patricia trie of the leaves.

akd cannot be built here (its Rust crates come from crates.io, which this machine does not
reach), so ``keydir_bench.py`` cannot run it beside Clearpost. Its published figure, 2,130
bytes, is the lookup proof in its own test vectors (``examples/src/test_vectors/
whatsapp_v1.yaml``), a directory of 5 labels and 94 versions. What grows with a directory is
the depth of its paths, so this module sizes akd's proof from the paths of the same tree
Clearpost's proofs are measured on:

- akd's tree is a Patricia trie over 256-bit VRF outputs: the root (label length 0) and
  every other node with two children, labelled by its subtree's longest common prefix, a
  leaf by its whole index (length 256);
- a lookup (``LookupProof``) is three VRF proofs, a membership proof of the version, one of
  its marker version (the greatest power of two not above it) and a non-membership proof of
  the version's *stale* label, with the commitment's nonce;
- a membership proof names its leaf and its hash and, for each node above it, that node's
  label and its other child's label and hash (``SiblingProof``); a non-membership proof names
  the deepest node whose label is a prefix of the missing one, both its children, and that
  node's membership proof;
- a label is sent with its trailing zero bytes dropped (``encode_minimum_label``); every
  optional field is set.

``check_vector`` reads a proof from akd's test-vector file, sizes it again from nothing but
its labels, and must come to its length byte for byte: the wire rules here are akd's.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

HASH = 32
VRF_PROOF = 80


def _varint(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _bytes_field(n: int) -> int:
    """A length-delimited field (field numbers below 16: one byte of tag)."""
    return 1 + _varint(n) + n


def _uint_field(n: int) -> int:
    return 1 + _varint(n)


@dataclass(frozen=True)
class Label:
    """An akd ``NodeLabel``: the first ``length`` bits of ``value`` (the rest zero)."""

    value: bytes
    length: int

    def size(self) -> int:
        return _bytes_field(len(self.value.rstrip(b"\0"))) + _uint_field(self.length)


def _element(label: Label) -> int:
    """``AzksElement``: a node's label and its 32-byte hash."""
    return _bytes_field(label.size()) + _bytes_field(HASH)


def _sibling_proof(parent: Label, sibling: Label, direction: int) -> int:
    return _bytes_field(parent.size()) + _bytes_field(_element(sibling)) + _uint_field(direction)


@dataclass(frozen=True)
class Path:
    """From the root down to a node: each node above it, with its other child."""

    to: Label
    steps: tuple[tuple[Label, Label, int], ...]
    """(parent, sibling, direction) from the root down."""

    def membership_size(self) -> int:
        return (
            _bytes_field(self.to.size())
            + _bytes_field(HASH)
            + sum(_bytes_field(_sibling_proof(*step)) for step in self.steps)
        )


@dataclass(frozen=True)
class Absence:
    """Where the search for a missing label stops: the deepest node whose label is a
    prefix of it, with that node's two children and its own path."""

    missing: Label
    node: Path
    children: tuple[Label, Label]

    def size(self) -> int:
        return (
            _bytes_field(self.missing.size())
            + _bytes_field(self.node.to.size())
            + sum(_bytes_field(_element(child)) for child in self.children)
            + _bytes_field(self.node.membership_size())
        )


def lookup_size(
    exists: Path, marker: Path, fresh: Absence, *, epoch: int, version: int, value: int = 0
) -> int:
    """``LookupProof``'s bytes (``value``: the looked-up value's length)."""
    return (
        _uint_field(epoch)
        + _bytes_field(value)
        + _uint_field(version)
        + 3 * _bytes_field(VRF_PROOF)
        + _bytes_field(exists.membership_size())
        + _bytes_field(marker.membership_size())
        + _bytes_field(fresh.size())
        + _bytes_field(HASH)  # commitment_nonce
    )


def _bit(index: bytes, i: int) -> int:
    return (index[i // 8] >> (7 - i % 8)) & 1


def _prefix(index: bytes, length: int) -> Label:
    whole, rest = divmod(length, 8)
    value = bytearray(index[:whole])
    if rest:
        value.append(index[whole] & (0xFF << (8 - rest)) & 0xFF)
    return Label(bytes(value), length)


def _common_bits(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 8 * len(a) - x.bit_length()


class Trie:
    """akd's Patricia trie over a sorted list of distinct 32-byte indexes: a subtree is a run
    of that list, so nothing but the list is kept."""

    def __init__(self, indexes: Sequence[bytes]) -> None:
        if len(indexes) < 2 or indexes[0][0] >> 7 == indexes[-1][0] >> 7:
            raise ValueError("the root (label length 0) needs a leaf under each child")
        self.indexes = indexes

    def _label(self, lo: int, hi: int) -> Label:
        first = self.indexes[lo]
        if hi - lo == 1:
            return Label(first, 256)
        return _prefix(first, _common_bits(first, self.indexes[hi - 1]))

    def _split(self, lo: int, hi: int, length: int) -> int:
        """Where the run under a node of label ``length`` turns from bit 0 to bit 1."""
        one = int.from_bytes(self.indexes[lo], "big") | (1 << (255 - length))
        one &= ~((1 << (255 - length)) - 1)
        return bisect.bisect_left(self.indexes, one.to_bytes(32, "big"), lo, hi)

    def _walk(self, index: bytes) -> tuple[list[tuple[Label, Label, int]], Label, int, int]:
        """Down from the root towards ``index`` while a child's label is a prefix of it:
        the steps taken, and the node reached (its label and run)."""
        steps: list[tuple[Label, Label, int]] = []
        lo, hi, node = 0, len(self.indexes), Label(b"", 0)
        while node.length < 256:
            mid = self._split(lo, hi, node.length)
            go = _bit(index, node.length)
            run, other = ((mid, hi), (lo, mid)) if go else ((lo, mid), (mid, hi))
            child = self._label(*run)
            if _prefix(index, child.length) != child:
                break
            steps.append((node, self._label(*other), go))
            lo, hi, node = run[0], run[1], child
        return steps, node, lo, hi

    def path(self, index: bytes) -> Path:
        """A leaf's membership path."""
        steps, node, _, _ = self._walk(index)
        if node.length != 256:
            raise KeyError("not a leaf of this trie")
        return Path(node, tuple(steps))

    def absence(self, index: bytes) -> Absence:
        steps, node, lo, hi = self._walk(index)
        if node.length == 256:
            raise KeyError("a leaf of this trie")
        mid = self._split(lo, hi, node.length)
        return Absence(
            Label(index, 256),
            Path(node, tuple(steps)),
            (self._label(lo, mid), self._label(mid, hi)),
        )


def check_vector(yaml_text: str) -> tuple[int, int]:
    """(bytes, bytes sized again from its labels) of the lookup proof in one of akd's
    test-vector files: the hex line after ``# Lookup Proof``."""
    lines = yaml_text.splitlines()
    proof = bytes.fromhex(lines[lines.index("# Lookup Proof") + 2].strip().strip("'\""))
    top = _fields(proof)
    exists, marker = _path_of(top[5][0]), _path_of(top[7][0])
    fresh = _fields(top[9][0])
    absence = Absence(
        _label_of(fresh[1][0]),
        _path_of(fresh[4][0]),
        tuple(_label_of(_fields(e)[1][0]) for e in fresh[3]),  # type: ignore[arg-type]
    )
    sized = lookup_size(
        exists, marker, absence, epoch=top[1][0], version=top[3][0], value=len(top[2][0])
    )
    return len(proof), sized


def _fields(message: bytes) -> dict[int, list]:  # type: ignore[type-arg]
    """A protobuf message's fields by number (varints as ints, the rest as bytes)."""
    out: dict[int, list] = {}  # type: ignore[type-arg]
    i = 0
    while i < len(message):
        tag, i = _read_varint(message, i)
        if tag & 7 == 0:
            value, i = _read_varint(message, i)
            out.setdefault(tag >> 3, []).append(value)
        else:
            n, i = _read_varint(message, i)
            out.setdefault(tag >> 3, []).append(message[i : i + n])
            i += n
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _label_of(message: bytes) -> Label:
    f = _fields(message)
    return Label(f[1][0], f[2][0])


def _path_of(message: bytes) -> Path:
    f = _fields(message)
    steps = []
    for raw in f.get(3, []):
        s = _fields(raw)
        sibling = _label_of(_fields(s[2][0])[1][0])
        steps.append((_label_of(s[1][0]), sibling, s[3][0]))
    return Path(_label_of(f[1][0]), tuple(steps))
