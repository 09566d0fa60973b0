"""Lookup, absence and history proofs: what the server sends for a label, what clients check.

A *bundle* proves, against one epoch's root, that some versions of one label are present
(each with its VRF proof and commitment; the looked-up ones also with value and opening) and
others absent (with their VRF proofs). ``verify_bundle``:

1. each version's VRF proof verifies under the directory's VRF public key for
   ``label_input(label, version)``; the first 32 bytes of the output are its tree index;
2. each opened version's commitment is ``commit(opening, label, version, value)``;
3. the batched prefix-tree proof shows every present index with its commitment and every
   absent index missing, under the root.

The shapes then say which versions an answer must show:

- lookup of the greatest version ``n``: the binary ladder of draft-ietf-keytrans-protocol
  (``lookup_ladder``) without version 0: versions ``1, 3, 7, ..., 2^k - 1`` up to the first
  one above ``n``, then a binary search between the last present one (or 0) and the first
  absent one down to ``n`` and ``n + 1``. Every ladder version ``<= n`` is present, every one
  ``> n`` absent; only ``n`` is opened. Two lookups that claim different greatest versions
  ``n < m`` always disagree on one version both show (the property the ladder exists for), so
  a server cannot give two people two "latest" versions without one of them holding proof of
  it. The draft's ladder also shows version 0 present, but no lookup shows 0 absent, so it
  separates a lookup only from the absence proof; that one shows 1 absent too, which every
  lookup of a version above 0 shows present. One version fewer in every lookup past 0 (about
  600 bytes at a million accounts), one more in an absence proof.
- history (the owner's monitoring): ``0..n`` present and opened (or only the versions after
  ``since``, for a device that verified ``since`` before: ``history_shown``), and absent
  every version the lookup ladder of ``n`` shows absent (``history_absent``: ``n + 1``
  among them). Showing only ``n + 1`` absent would not do: a server could add versions
  ``n + 2, ...`` (skipping ``n + 1``) and give a contact a valid lookup of one of them that
  shows ``n + 1`` nowhere.
  Every lookup of a greatest version ``m > n`` shows present a version that the ladder of
  ``n`` shows absent, so the owner's next check fails on it (the tree is append-only, so
  the ghost versions are still there at any later epoch);
- a repeat lookup, by someone who verified version ``k`` of the label before
  (``lookup_since``): the lookup of ``n >= k`` without the ladder versions ``<= k``, and
  without any opened version when ``n == k``. Those are the ladder versions of ``k`` itself
  (the two ladders agree below the first version where their binary searches part, which
  is above ``k``), so the asker has seen them present, and the tree only grows; the absent
  ones are all shown again, so a greatest version above ``n`` still cannot hide;
- absence: versions 0 and 1 absent (``ABSENT``).

Layouts (bytes and JSON) are in ``Bundle``'s docstring and docs/key-directory.md.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from clearpost.core.keydir.commit import MAX_VERSION, commit, label_input
from clearpost.core.keydir.errors import KeyDirFormatError, KeyDirProofError
from clearpost.core.keydir.prefix_proof import PrefixProof
from clearpost.core.keydir.tree import PrefixTree, verify_prefix_proof
from clearpost.core.keydir.vrf import PROOF_SIZE, VrfSecretKey, proof_to_hash, verify

__all__ = [
    "ABSENT",
    "INDEX_SIZE",
    "Bundle",
    "Present",
    "StoredVersion",
    "check_absence",
    "check_history",
    "check_lookup",
    "check_lookup_since",
    "history_absent",
    "history_shown",
    "index_of",
    "lookup_ladder",
    "lookup_shown",
    "lookup_since",
    "make_bundle",
    "prove_absence",
    "prove_history",
    "prove_lookup",
    "verify_absence",
    "verify_bundle",
    "verify_history",
    "verify_lookup",
]

INDEX_SIZE = 32
ABSENT = (0, 1)
"""The versions an absence proof shows absent: 0 (no version) and 1, which every lookup of
a greatest version above 0 shows present (0 is shown present only by lookups of 0)."""


def index_of(vrf_output: bytes) -> bytes:
    """The tree index of a version: its VRF output truncated to 32 bytes."""
    return vrf_output[:INDEX_SIZE]


def lookup_ladder(n: int) -> tuple[list[int], list[int]]:
    """(present, absent) versions a lookup of greatest version ``n`` shows, ascending.

    The draft's ``base_binary_ladder`` without version 0 unless ``n`` is 0 (the module
    docstring says why). Versions past ``2^32 - 1`` cannot exist and are left out (taken as
    absent without a proof).
    """
    if not 0 <= n <= MAX_VERSION:
        raise KeyDirFormatError(f"a version is in 0..{MAX_VERSION}")
    present: set[int] = {n}
    absent: set[int] = set()
    k = 1
    while (1 << k) - 1 <= n:
        present.add((1 << k) - 1)
        k += 1
    lo, hi = (1 << (k - 1)) - 1, (1 << k) - 1
    absent.add(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mid <= n:
            present.add(mid)
            lo = mid
        else:
            absent.add(mid)
            hi = mid
    return sorted(present), sorted(v for v in absent if v <= MAX_VERSION)


def lookup_since(n: int, since: int) -> tuple[list[int], list[int]]:
    """(present, absent) versions a repeat lookup of greatest version ``n`` shows to someone
    who verified version ``since <= n`` before: ``lookup_ladder(n)`` without the present
    versions ``<= since`` (``n`` itself is then shown only when it is new)."""
    if not 0 <= since <= n:
        raise KeyDirFormatError("a repeat lookup is of a version at or above the one seen")
    present, absent = lookup_ladder(n)
    return [v for v in present if v > since], absent


def lookup_shown(n: int, since: int | None = None) -> tuple[list[int], list[int]]:
    """What a lookup of greatest version ``n`` shows: ``lookup_since(n, since)`` to someone
    who verified ``since <= n`` before, else the whole ladder (a ``since`` above ``n`` gets
    the whole ladder of ``n``, which that asker then refuses as a step back)."""
    return lookup_since(n, since) if since is not None and since <= n else lookup_ladder(n)


def history_absent(n: int) -> list[int]:
    """The versions a history of versions ``0..n`` shows absent (``n = -1``: none exist, and
    it is ``ABSENT``, as in an absence proof).

    The absent half of ``lookup_ladder(n)``: any lookup that claims a greatest version above
    ``n`` shows one of them present (the module docstring says why this matters)."""
    return list(ABSENT) if n < 0 else lookup_ladder(n)[1]


def history_shown(n: int, since: int | None = None) -> list[int]:
    """The versions a history of greatest version ``n`` shows present (and opened): all of
    them, ``0..n``; to a device that verified version ``since`` before, only the ones after
    it, so none while ``since`` is still the greatest (the device has its value, the tree
    only grows, and the absent versions of ``n``'s ladder are shown all the same); ``n``
    alone if the label went back below ``since``, so that a rollback shows as one."""
    if since is None:
        return list(range(n + 1))
    if n < 0:
        return []
    return list(range(since + 1, n + 1)) if since <= n else [n]


@dataclass(frozen=True, slots=True)
class Present:
    """A version shown present; ``opening`` and ``value`` only where it is opened."""

    version: int
    vrf_proof: bytes
    commitment: bytes
    opening: bytes | None = None
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    """Versions of one label shown present or absent, and the prefix proof of them all.

    JSON: ``{"label": str, "present": [{"version", "vrf_proof", "commitment"[, "opening",
    "value"]}], "absent": [{"version", "vrf_proof"}], "proof": b64}`` with byte strings in
    standard base64 and ``proof`` the prefix proof's bytes.

    Bytes (big-endian): ``uint16 len || label``; ``uint16 count`` then per present version
    ``uint32 version || vrf_proof[80] || uint8 opened`` followed by ``commitment[32]`` when
    not opened or by ``uint8 len || opening || uint32 len || value`` when opened (its
    commitment is recomputed); ``uint16 count`` then per absent version ``uint32 version ||
    vrf_proof[80]``; then the prefix proof to the end.
    """

    label: bytes
    present: list[Present]
    absent: list[tuple[int, bytes]]
    """(version, VRF proof) of each version shown absent."""
    proof: bytes
    """The prefix-tree proof (``PrefixProof.to_bytes``)."""

    def to_json(self) -> dict[str, Any]:
        present: list[dict[str, Any]] = []
        for p in self.present:
            item: dict[str, Any] = {
                "version": p.version,
                "vrf_proof": _b64(p.vrf_proof),
                "commitment": _b64(p.commitment),
            }
            if p.opening is not None and p.value is not None:
                item["opening"] = _b64(p.opening)
                item["value"] = _b64(p.value)
            present.append(item)
        return {
            "label": self.label.decode(),
            "present": present,
            "absent": [{"version": v, "vrf_proof": _b64(pi)} for v, pi in self.absent],
            "proof": _b64(self.proof),
        }

    @classmethod
    def from_json(cls, data: Any) -> Bundle:
        try:
            present = [
                Present(
                    _int(p["version"]),
                    _unb64(p["vrf_proof"]),
                    _unb64(p["commitment"]),
                    _unb64(p["opening"]) if "opening" in p else None,
                    _unb64(p["value"]) if "value" in p else None,
                )
                for p in data["present"]
            ]
            absent = [(_int(a["version"]), _unb64(a["vrf_proof"])) for a in data["absent"]]
            label = data["label"]
            if not isinstance(label, str):
                raise TypeError("label")
            return cls(label.encode(), present, absent, _unb64(data["proof"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise KeyDirFormatError("a key-directory proof is not in the documented form") from exc

    def to_bytes(self) -> bytes:
        out = bytearray(len(self.label).to_bytes(2, "big") + self.label)
        out += len(self.present).to_bytes(2, "big")
        for p in self.present:
            out += p.version.to_bytes(4, "big") + p.vrf_proof
            if p.opening is not None and p.value is not None:
                out += b"\x01" + bytes([len(p.opening)]) + p.opening
                out += len(p.value).to_bytes(4, "big") + p.value
            else:
                out += b"\x00" + p.commitment
        out += len(self.absent).to_bytes(2, "big")
        for v, pi in self.absent:
            out += v.to_bytes(4, "big") + pi
        return bytes(out + self.proof)

    @classmethod
    def from_bytes(cls, data: bytes) -> Bundle:
        at = 0

        def take(n: int) -> bytes:
            nonlocal at
            if at + n > len(data):
                raise KeyDirFormatError("a key-directory proof is cut short")
            chunk = bytes(data[at : at + n])
            at += n
            return chunk

        def uint(n: int) -> int:
            return int.from_bytes(take(n), "big")

        label = take(uint(2))
        present = []
        for _ in range(uint(2)):
            version, pi, opened = uint(4), take(PROOF_SIZE), take(1)
            if opened == b"\x01":
                opening = take(uint(1))
                value = take(uint(4))
                try:
                    c = commit(opening, label, version, value)
                except ValueError as exc:
                    raise KeyDirFormatError("an opening is 16 or 32 bytes") from exc
                present.append(Present(version, pi, c, opening, value))
            elif opened == b"\x00":
                present.append(Present(version, pi, take(32)))
            else:
                raise KeyDirFormatError("a present version is opened (1) or not (0)")
        absent = [(uint(4), take(PROOF_SIZE)) for _ in range(uint(2))]
        _, end = PrefixProof.read(data, at)
        if end != len(data):
            raise KeyDirFormatError("bytes left over after a key-directory proof")
        return cls(label, present, absent, bytes(data[at:]))


def verify_bundle(vrf_key: bytes, root: bytes, bundle: Bundle) -> dict[int, bytes]:
    """Steps 1-3 of the module docstring; the opened values by version, or an error."""
    expect: dict[bytes, bytes | None] = {}
    opened: dict[int, bytes] = {}
    seen: set[int] = set()

    def index(version: int, pi: bytes) -> bytes:
        if version in seen:
            raise KeyDirProofError("a proof shows one version twice")
        seen.add(version)
        try:
            alpha = label_input(bundle.label, version)
        except ValueError as exc:
            raise KeyDirFormatError(str(exc)) from exc
        i = index_of(verify(vrf_key, alpha, pi))
        if i in expect:
            raise KeyDirProofError("two versions with one index")
        return i

    for p in bundle.present:
        # 1. the VRF gives the index
        i = index(p.version, p.vrf_proof)
        # 2. the opening opens the commitment
        if p.opening is not None or p.value is not None:
            if p.opening is None or p.value is None or len(p.opening) not in (16, 32):
                raise KeyDirProofError(f"version {p.version} is opened without its opening")
            if commit(p.opening, bundle.label, p.version, p.value) != p.commitment:
                raise KeyDirProofError(f"version {p.version}'s opening does not open it")
            opened[p.version] = p.value
        if len(p.commitment) != 32:
            raise KeyDirFormatError("a commitment is 32 bytes")
        expect[i] = p.commitment
    for version, pi in bundle.absent:
        expect[index(version, pi)] = None
    # 3. the tree proof
    verify_prefix_proof(root, PrefixProof.from_bytes(bundle.proof), expect)
    return opened


def check_lookup(vrf_key: bytes, root: bytes, bundle: Bundle) -> tuple[int, bytes]:
    """(version, value) of the label's greatest version under ``root``, proven."""
    opened = verify_bundle(vrf_key, root, bundle)
    if len(opened) != 1:
        raise KeyDirProofError("a lookup opens exactly one version")
    ((n, value),) = opened.items()
    _shape(bundle, *lookup_ladder(n))
    return n, value


def check_lookup_since(
    vrf_key: bytes, root: bytes, bundle: Bundle, since: int
) -> tuple[int, bytes | None]:
    """A repeat lookup (``lookup_since``) by someone who verified version ``since`` before:
    the greatest version under ``root`` and its value, or ``(since, None)`` when it is still
    ``since`` (whose value the asker has). A greatest version below ``since`` is refused:
    versions are never removed, so the server is showing an older directory."""
    opened = verify_bundle(vrf_key, root, bundle)
    if len(opened) > 1:
        raise KeyDirProofError("a lookup opens exactly one version")
    # nothing opened: the greatest version is still ``since`` (the shape checks it)
    n, value = next(iter(opened.items())) if opened else (since, None)
    if n < since:
        raise KeyDirProofError(
            f"the directory shows version {n} as the greatest, but version {since} was "
            "verified before: versions are never removed"
        )
    _shape(bundle, *lookup_since(n, since))
    return n, value


def check_history(
    vrf_key: bytes, root: bytes, bundle: Bundle, since: int | None = None
) -> list[bytes]:
    """The values of the versions ``history_shown(n, since)`` in order, proven: every
    version (``since = None``; empty: the label has none), or those after ``since``, the
    greatest version a device verified before (empty: ``since`` is still the greatest)."""
    opened = verify_bundle(vrf_key, root, bundle)
    shown = sorted(p.version for p in bundle.present)
    # nothing shown to a device that verified ``since``: its greatest is still ``since``
    n = shown[-1] if shown else (-1 if since is None else since)
    wanted = history_shown(n, since)
    _shape(bundle, wanted, history_absent(n))
    if sorted(opened) != wanted:
        raise KeyDirProofError("a history opens every version it shows")
    return [opened[v] for v in wanted]


def check_absence(vrf_key: bytes, root: bytes, bundle: Bundle) -> None:
    """The label has no version at all under ``root``."""
    verify_bundle(vrf_key, root, bundle)
    _shape(bundle, [], list(ABSENT))


verify_lookup = check_lookup
verify_history = check_history
verify_absence = check_absence


def _shape(bundle: Bundle, present: list[int], absent: list[int]) -> None:
    if sorted(p.version for p in bundle.present) != present or sorted(
        v for v, _ in bundle.absent
    ) != sorted(absent):
        raise KeyDirProofError("the proof does not show the versions this answer must show")


# -- the prover's side (pure: the server hands in its tree, key and stored versions) ----------


class StoredVersion(Protocol):
    """What the server keeps per (label, version)."""

    @property
    def version(self) -> int: ...
    @property
    def vrf_proof(self) -> bytes: ...
    @property
    def opening(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...


def make_bundle(
    tree: PrefixTree,
    vrf_key: VrfSecretKey,
    label: bytes,
    present: Iterable[StoredVersion],
    absent: Iterable[int],
    opened: Iterable[int],
) -> Bundle:
    """A bundle showing ``present`` (opening those in ``opened``) and ``absent`` versions."""
    shown = list(present)
    opened_set = set(opened)
    absent_pis = [(v, vrf_key.prove(label_input(label, v))) for v in absent]
    indexes = [index_of(proof_to_hash(v.vrf_proof)) for v in shown]
    indexes += [index_of(proof_to_hash(pi)) for _, pi in absent_pis]
    proof = tree.prove(indexes)
    items = []
    for v in shown:
        c = commit(v.opening, label, v.version, v.value)
        if v.version in opened_set:
            items.append(Present(v.version, v.vrf_proof, c, v.opening, v.value))
        else:
            items.append(Present(v.version, v.vrf_proof, c))
    return Bundle(label, items, absent_pis, proof.to_bytes())


def prove_lookup(
    tree: PrefixTree,
    vrf_key: VrfSecretKey,
    label: bytes,
    versions: Sequence[StoredVersion],
    since: int | None = None,
) -> Bundle:
    """The lookup of the greatest of ``versions`` (all of the label's, ascending, 0..n), or
    the absence proof when there are none; ``since``: a repeat lookup for someone who
    verified that version before (``lookup_since``; a full lookup when it is above ``n``,
    which the asker then refuses)."""
    if not versions:
        return prove_absence(tree, vrf_key, label)
    n = versions[-1].version
    present, absent = lookup_shown(n, since)
    wanted = set(present)
    return make_bundle(
        tree, vrf_key, label, [v for v in versions if v.version in wanted], absent, [n]
    )


def prove_history(
    tree: PrefixTree,
    vrf_key: VrfSecretKey,
    label: bytes,
    versions: Sequence[StoredVersion],
    since: int | None = None,
) -> Bundle:
    """Versions ``history_shown(n, since)`` opened (``since = None``: every version), and the
    absent versions of the greatest one's ladder.

    A device that verified version ``since`` before need not see it or the older ones
    again: the tree only grows (the auditor checks every epoch), so they are still there,
    and the device refuses an epoch older than one it verified."""
    n = len(versions) - 1
    shown = [versions[v] for v in history_shown(n, since)]
    opened = [v.version for v in shown]
    return make_bundle(tree, vrf_key, label, shown, history_absent(n), opened)


def prove_absence(tree: PrefixTree, vrf_key: VrfSecretKey, label: bytes) -> Bundle:
    """Versions 0 and 1 absent (``ABSENT``): the label has never existed."""
    return make_bundle(tree, vrf_key, label, [], ABSENT, [])


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(s: Any) -> bytes:
    if not isinstance(s, str):
        raise TypeError("not base64")
    try:
        return base64.b64decode(s, validate=True)
    except binascii.Error as exc:
        raise TypeError("not base64") from exc


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise TypeError("not a version")
    return v
