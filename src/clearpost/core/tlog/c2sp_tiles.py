"""C2SP tlog-tiles resources: their paths, hash tiles cut from stored tiles, entry bundles.

A C2SP hash tile ``<L>/<N>`` is the 256 hashes of tree level ``8*L`` over the nodes
``[256*N, 256*N + 256)``: exactly the bottom level of the stored tile ``TileId(L, N)``
(``tiles.py``), which keeps all eight levels in post-order. ``bottom_hashes`` cuts them
out; ``tile_nodes`` recomputes a whole stored tile from its bottom hashes, which is how an
auditor checks every stored node it reads.

An entry bundle ``entries/<N>`` holds entries ``[256*N, 256*N + W)``, each as a big-endian
uint16 length followed by the entry's exact canonical-JSON bytes (the bytes whose RFC 6962
leaf hash ``SHA-256(0x00 || bytes)`` is the tree's leaf). Entries are at most 16 KiB, so
the length always fits.

Paths (``tile_path`` / ``parse_tile_path``) follow the spec to the byte, and only the one
canonical spelling of a resource is accepted: ``N`` as zero-padded three-digit elements,
all but the last prefixed with ``x`` and no leading ``x000`` elements (the encoding of
``golang.org/x/mod/sumdb/tlog``), ``W`` from 1 to 255 without leading zeros.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from hashlib import sha256
from itertools import chain
from operator import itemgetter
from typing import NamedTuple

from clearpost.core.tlog.hashing import HASH_SIZE
from clearpost.core.tlog.nodes import NodeId
from clearpost.core.tlog.tiles import TILE_HEIGHT, TILE_NODES, TILE_WIDTH, locate, nodes_below

MAX_LEVEL = 63
MAX_INDEX = 2**56  # no tree of at most 2**64 leaves has a tile index this large
MAX_ENTRY_BYTES = 0xFFFF
_LENGTH = struct.Struct(">H").pack
_PREFIXES = [_LENGTH(n) for n in range(16 * 1024 + 1)]
"""Length prefixes of entries up to the log's limit (``entries.MAX_ENTRY_BYTES``)."""

# The post-order position of each (sub-level, index) of a stored tile, and the reverse.
_POSITION = {
    (sub, i): locate(NodeId(sub, i))[1]
    for sub in range(TILE_HEIGHT)
    for i in range(TILE_WIDTH >> sub)
}
_ORDER = sorted(_POSITION, key=_POSITION.__getitem__)
_BOTTOM = [_POSITION[(0, i)] for i in range(TILE_WIDTH)]
# ``tile_nodes`` lists the nodes level by level; the list index of each post-order position
_LEVEL_START = [sum(TILE_WIDTH >> s for s in range(sub)) for sub in range(TILE_HEIGHT)]
_POST_ORDER = [_LEVEL_START[sub] + i for sub, i in _ORDER]
_IN_POST_ORDER = itemgetter(*_POST_ORDER)


class TileRequest(NamedTuple):
    """One tlog-tiles resource: ``level`` None for an entry bundle; ``width`` 256 when full."""

    level: int | None
    index: int  # type: ignore[assignment]  # (shadows tuple.index, which nothing here uses)
    width: int

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH


def encode_index(index: int) -> str:
    """``N`` as path elements: 1234067 -> ``x001/x234/067``."""
    digits = f"{index:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path of a resource under the log's prefix: ``tile/0/x001/234.p/17``."""
    where = "entries" if level is None else str(level)
    suffix = "" if width == TILE_WIDTH else f".p/{width}"
    return f"tile/{where}/{encode_index(index)}{suffix}"


def parse_tile_path(path: str) -> TileRequest | None:
    """The resource named by ``path`` (the part after ``tile/``), or None when it is not
    the canonical path of one."""
    elements = path.split("/")
    if len(elements) < 2:
        return None
    head, rest = elements[0], elements[1:]
    if head == "entries":
        level = None
    elif head.isascii() and head.isdigit() and str(int(head)) == head and int(head) <= MAX_LEVEL:
        level = int(head)
    else:
        return None
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        raw = rest.pop()
        rest[-1] = rest[-1][:-2]
        if not (raw.isascii() and raw.isdigit() and str(int(raw)) == raw):
            return None
        width = int(raw)
        if not 1 <= width < TILE_WIDTH:
            return None
    digits = ""
    for k, element in enumerate(rest):
        last = k == len(rest) - 1
        if not last:
            if not element.startswith("x"):
                return None
            element = element[1:]
        if not (len(element) == 3 and element.isascii() and element.isdigit()):
            return None
        digits += element
    if not digits:
        return None
    index = int(digits)
    if index >= MAX_INDEX or encode_index(index) != "/".join(rest):
        return None
    return TileRequest(level, index, width)


def bottom_hashes(stored: bytes, width: int) -> bytes | None:
    """The first ``width`` bottom hashes of a stored tile: the C2SP hash tile (None when the
    stored tile does not reach that far)."""
    if width < 1 or len(stored) < nodes_below(width) * HASH_SIZE:
        return None
    view = memoryview(stored)
    return b"".join([view[p * HASH_SIZE : (p + 1) * HASH_SIZE] for p in _BOTTOM[:width]])


def stored_width(stored_len: int) -> int:
    """How many bottom hashes a stored tile of ``stored_len`` bytes holds."""
    count = stored_len // HASH_SIZE
    if count >= TILE_NODES:  # a full tile: every tile of a tree but its right edge
        return TILE_WIDTH
    lo, hi = 0, TILE_WIDTH
    while lo < hi:  # the largest w with nodes_below(w) <= count
        mid = (lo + hi + 1) // 2
        if nodes_below(mid) <= count:
            lo = mid
        else:
            hi = mid - 1
    return lo


def tile_nodes(bottom: Sequence[bytes]) -> tuple[bytes, bytes | None]:
    """Recompute a stored tile from its bottom hashes (level ``8*L``, in order).

    Returns the tile's bytes (all nodes of its eight levels that the bottom hashes
    complete, in the stored post-order) and, for a full tile, its root: the hash one
    level above, which is a bottom hash of the tile above. Hashing is done level by level
    in list comprehensions (twice as fast as appending node by node in Python), and a full
    tile is put in post-order by one ``itemgetter`` call.
    """
    width = len(bottom)
    levels: list[Sequence[bytes]] = [bottom]
    below = bottom
    for _ in range(TILE_HEIGHT - 1):
        pairs = iter(below)  # zipped with itself: (0, 1), (2, 3), ...; an odd last one waits
        below = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        levels.append(below)
    if width == TILE_WIDTH:
        nodes = list(chain.from_iterable(levels))
        return b"".join(_IN_POST_ORDER(nodes)), sha256(b"\x01" + below[0] + below[1]).digest()
    return b"".join([levels[sub][i] for sub, i in _ORDER[: nodes_below(width)]]), None


def node_at(tile_level: int, tile_index: int, position: int) -> NodeId:
    """The tree node at ``position`` of stored tile ``(tile_level, tile_index)``."""
    sub, i = _ORDER[position]
    return NodeId(tile_level * TILE_HEIGHT + sub, (tile_index << (TILE_HEIGHT - sub)) + i)


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length and its bytes.

    Built without a Python step per entry, for the server encodes a million entries for a
    full audit: the length prefixes are looked up (entries are at most 16 KiB, so the
    table holds every valid one) and interleaved with the entries by slice assignment."""
    bodies = entries if isinstance(entries, list) else list(entries)
    lengths = list(map(len, bodies))
    if max(lengths, default=0) < len(_PREFIXES):
        prefixes = list(map(_PREFIXES.__getitem__, lengths))
    else:  # only a damaged row is this long
        if max(lengths) > MAX_ENTRY_BYTES:
            raise ValueError("an entry in a bundle is at most 65,535 bytes")
        prefixes = [_LENGTH(n) for n in lengths]
    parts = prefixes + bodies
    parts[::2], parts[1::2] = prefixes, bodies
    return b"".join(parts)


def decode_bundle(data: bytes) -> list[bytes] | None:
    """The entries of a bundle, or None when it is not a sequence of length-prefixed ones."""
    entries: list[bytes] = []
    add, at, end = entries.append, 0, len(data)
    try:
        while at < end:
            start = at + 2
            at = start + (data[at] << 8 | data[at + 1])
            add(data[start:at])
    except IndexError:  # a length cut short
        return None
    return entries if at == end else None
