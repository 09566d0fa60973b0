"""The batched prefix-tree proof and its byte and JSON layouts.

A proof answers several searches at once. Searched indexes are sorted; the proof walks the
union of their paths depth-first (left before right), and:

- each path ends with a *result*: ``included`` (the searched leaf is at ``depth``),
  ``absent_leaf`` (another leaf, given, sits where the path would go) or ``absent_empty`` (the
  path runs into the empty node at ``depth``);
- each child of a node on a path that is on no path is a *copath* node, in walk order: its
  hash, or the empty node.

Bytes (all integers big-endian)::

    uint32 result_count
    result_count x { uint8 kind (1 included, 2 absent_leaf, 3 absent_empty: the draft's
                                    PrefixSearchResultType)
                     uint16 depth
                     kind 2 only: index[32] value[32] }
    uint32 copath_count
    ceil(copath_count / 8) bytes: bit i (MSB first) set = copath node i is empty; padding 0
    32 bytes per non-empty copath node, in order

JSON: ``{"results": [{"kind": "included", "depth": 20}, {"kind": "absent_leaf", "depth": 21,
"index": hex, "value": hex}, ...], "copath": [hex or null, ...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clearpost.core.keydir.errors import KeyDirFormatError

__all__ = ["ABSENT_EMPTY", "ABSENT_LEAF", "INCLUDED", "PrefixProof", "SearchResult"]

INCLUDED = 1
ABSENT_LEAF = 2
ABSENT_EMPTY = 3
_KIND_NAMES = {INCLUDED: "included", ABSENT_LEAF: "absent_leaf", ABSENT_EMPTY: "absent_empty"}
_KINDS_BY_NAME = {v: k for k, v in _KIND_NAMES.items()}
_MAX_DEPTH = 256
_MAX_COUNT = 1 << 24


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Where one searched path ends (``leaf_*`` only for ``ABSENT_LEAF``)."""

    kind: int
    depth: int
    leaf_index: bytes | None = None
    leaf_value: bytes | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KIND_NAMES:
            raise KeyDirFormatError("a search result's kind is 1, 2 or 3")
        if not 0 <= self.depth <= _MAX_DEPTH:
            raise KeyDirFormatError("a search result's depth is in 0..256")
        has_leaf = self.leaf_index is not None or self.leaf_value is not None
        if (self.kind == ABSENT_LEAF) != has_leaf:
            raise KeyDirFormatError("only an absent_leaf result carries a leaf")
        if has_leaf and (
            not isinstance(self.leaf_index, bytes)
            or len(self.leaf_index) != 32
            or not isinstance(self.leaf_value, bytes)
            or len(self.leaf_value) != 32
        ):
            raise KeyDirFormatError("a result's leaf is a 32-byte index and a 32-byte value")


@dataclass(frozen=True, slots=True)
class PrefixProof:
    """Results (one per searched index, in index order) and copath nodes (None: empty)."""

    results: tuple[SearchResult, ...]
    copath: tuple[bytes | None, ...]

    def __post_init__(self) -> None:
        for node in self.copath:
            if node is not None and (not isinstance(node, bytes) or len(node) != 32):
                raise KeyDirFormatError("a copath node is 32 bytes or empty")
            if node == bytes(32):
                raise KeyDirFormatError("an empty copath node is marked empty, not zero bytes")

    def to_bytes(self) -> bytes:
        out = bytearray(len(self.results).to_bytes(4, "big"))
        for r in self.results:
            out.append(r.kind)
            out += r.depth.to_bytes(2, "big")
            if r.kind == ABSENT_LEAF:
                assert r.leaf_index is not None and r.leaf_value is not None
                out += r.leaf_index + r.leaf_value
        out += len(self.copath).to_bytes(4, "big")
        bitmap = bytearray((len(self.copath) + 7) // 8)
        for i, node in enumerate(self.copath):
            if node is None:
                bitmap[i >> 3] |= 0x80 >> (i & 7)
        out += bitmap
        for node in self.copath:
            if node is not None:
                out += node
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> PrefixProof:
        proof, end = cls.read(data, 0)
        if end != len(data):
            raise KeyDirFormatError("bytes left over after a prefix proof")
        return proof

    @classmethod
    def read(cls, data: bytes, at: int) -> tuple[PrefixProof, int]:
        """Parse a proof starting at ``at``; return it and the offset after it."""
        data = bytes(data)

        def take(n: int) -> bytes:
            nonlocal at
            if at + n > len(data):
                raise KeyDirFormatError("a prefix proof is cut short")
            chunk = data[at : at + n]
            at += n
            return chunk

        count = int.from_bytes(take(4), "big")
        if count > _MAX_COUNT:
            raise KeyDirFormatError("too many results in a prefix proof")
        results = []
        for _ in range(count):
            kind = take(1)[0]
            depth = int.from_bytes(take(2), "big")
            if kind == ABSENT_LEAF:
                results.append(SearchResult(kind, depth, take(32), take(32)))
            else:
                results.append(SearchResult(kind, depth))
        n = int.from_bytes(take(4), "big")
        if n > _MAX_COUNT:
            raise KeyDirFormatError("too many copath nodes in a prefix proof")
        bitmap = take((n + 7) // 8)
        if n % 8 and bitmap[-1] & (0xFF >> (n % 8)):
            raise KeyDirFormatError("a prefix proof's bitmap padding is not zero")
        copath: list[bytes | None] = []
        for i in range(n):
            copath.append(None if bitmap[i >> 3] & (0x80 >> (i & 7)) else take(32))
        return cls(tuple(results), tuple(copath)), at

    def to_json(self) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        for r in self.results:
            item: dict[str, Any] = {"kind": _KIND_NAMES[r.kind], "depth": r.depth}
            if r.kind == ABSENT_LEAF:
                assert r.leaf_index is not None and r.leaf_value is not None
                item["index"] = r.leaf_index.hex()
                item["value"] = r.leaf_value.hex()
            results.append(item)
        return {
            "results": results,
            "copath": [None if c is None else c.hex() for c in self.copath],
        }

    @classmethod
    def from_json(cls, obj: Any) -> PrefixProof:
        try:
            results = []
            for item in obj["results"]:
                kind = _KINDS_BY_NAME[item["kind"]]
                depth = item["depth"]
                if isinstance(depth, bool) or not isinstance(depth, int):
                    raise KeyDirFormatError("a result's depth is an integer")
                if kind == ABSENT_LEAF:
                    leaf = (_hex32(item["index"]), _hex32(item["value"]))
                    results.append(SearchResult(kind, depth, *leaf))
                else:
                    results.append(SearchResult(kind, depth))
            copath = tuple(None if c is None else _hex32(c) for c in obj["copath"])
        except (KeyError, TypeError) as exc:
            raise KeyDirFormatError("a prefix proof is {results, copath}") from exc
        return cls(tuple(results), copath)


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise KeyDirFormatError("a hash is 64 lowercase hex digits")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise KeyDirFormatError("a hash is 64 lowercase hex digits") from exc
    if raw.hex() != value:
        raise KeyDirFormatError("a hash is 64 lowercase hex digits")
    return raw
