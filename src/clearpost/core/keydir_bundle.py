"""Proof bundles: what the server sends for a label and what every verifier checks.

A bundle proves, against one epoch's root, that some versions of one label are present
(each with its commitment; the looked-up ones also with value and opening) and others
absent. Verifying (``verify_bundle``):

1. Each version's VRF proof verifies under the directory's VRF public key for
   ``label_input(label, version)``; the first 32 bytes of its output are the leaf index.
2. Each opened version's commitment is ``commit(opening, label, version, value)``.
3. The prefix-tree proof shows every present index with its commitment and every absent
   index missing, under the root.

The shapes (``check_lookup``, ``check_history``, ``check_absence``) then say which versions
must be there: a lookup of version ``n`` shows ``n`` opened, ``n + 1`` absent and the binary
ladder ``2^k - 1 < n`` present; a history shows ``0..n`` opened and ``n + 1`` absent; an
absence shows version 0 absent. The wire form is JSON with base64 byte strings.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.keydir import commit as commit_mod
from clearpost.core.keydir import tree as tree_mod
from clearpost.core.keydir import vrf

INDEX_BYTES = 32


@dataclass(frozen=True, slots=True)
class Present:
    version: int
    vrf_proof: bytes
    commitment: bytes
    opening: bytes | None = None
    value: bytes | None = None


@dataclass(frozen=True, slots=True)
class Bundle:
    label: bytes
    present: list[Present]
    absent: list[tuple[int, bytes]]
    """(version, VRF proof) of each version shown absent."""
    proof: bytes
    """The prefix-tree proof (``core/keydir/tree.py``'s byte layout)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label.decode(),
            "present": [
                {
                    "version": p.version,
                    "vrf_proof": _b64(p.vrf_proof),
                    "commitment": _b64(p.commitment),
                    **(
                        {"opening": _b64(p.opening), "value": _b64(p.value)}
                        if p.opening is not None and p.value is not None
                        else {}
                    ),
                }
                for p in self.present
            ],
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
            return cls(str(data["label"]).encode(), present, absent, _unb64(data["proof"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput("a key-directory proof is not in the documented form") from exc


def index_of(vrf_output: bytes) -> bytes:
    """The leaf index: the VRF output truncated to 32 bytes."""
    return vrf_output[:INDEX_BYTES]


def verify_bundle(vrf_key: bytes, root: bytes, bundle: Bundle) -> dict[int, bytes]:
    """Steps 1-3 of the module docstring; returns the opened values by version. Raises
    ``InvalidInput`` (a ``core.keydir.errors`` subclass) when anything does not verify."""
    expect: dict[bytes, bytes | None] = {}
    opened: dict[int, bytes] = {}
    seen: set[int] = set()
    for p in bundle.present:
        if p.version in seen:
            raise InvalidInput("a proof shows one version twice", code="invalid_keydir_proof")
        seen.add(p.version)
        # 1. the VRF gives the index
        alpha = commit_mod.label_input(bundle.label, p.version)
        index = index_of(vrf.verify(vrf_key, alpha, p.vrf_proof))
        # 2. the opening opens the commitment
        if p.opening is not None and p.value is not None:
            if commit_mod.commit(p.opening, bundle.label, p.version, p.value) != p.commitment:
                raise InvalidInput(
                    f"version {p.version}'s opening does not open its commitment",
                    code="invalid_keydir_proof",
                )
            opened[p.version] = p.value
        expect[index] = p.commitment
    for version, pi in bundle.absent:
        if version in seen:
            raise InvalidInput("a proof shows one version twice", code="invalid_keydir_proof")
        seen.add(version)
        alpha = commit_mod.label_input(bundle.label, version)
        expect[index_of(vrf.verify(vrf_key, alpha, pi))] = None
    # 3. the tree proof
    tree_mod.verify_prefix_proof(root, tree_mod.PrefixProof.from_bytes(bundle.proof), expect)
    return opened


def ladder(n: int) -> list[int]:
    """The binary ladder below version ``n``: ``2^k - 1`` for each k with ``2^k - 1 < n``."""
    out, k = [], 0
    while (1 << k) - 1 < n:
        out.append((1 << k) - 1)
        k += 1
    return out


def check_lookup(vrf_key: bytes, root: bytes, bundle: Bundle) -> tuple[int, bytes]:
    """(version, value) of the greatest version of the label, proven."""
    opened = verify_bundle(vrf_key, root, bundle)
    if len(opened) != 1:
        raise InvalidInput("a lookup opens exactly one version", code="invalid_keydir_proof")
    ((n, value),) = opened.items()
    _shape(bundle, {n, *ladder(n)}, {n + 1})
    return n, value


def check_history(vrf_key: bytes, root: bytes, bundle: Bundle) -> list[bytes]:
    """Every version's value, 0..n in order, proven (an empty list: no version at all)."""
    opened = verify_bundle(vrf_key, root, bundle)
    n = len(opened)
    if sorted(opened) != list(range(n)):
        raise InvalidInput("a history opens versions 0..n", code="invalid_keydir_proof")
    _shape(bundle, set(range(n)), {n})
    return [opened[v] for v in range(n)]


def check_absence(vrf_key: bytes, root: bytes, bundle: Bundle) -> None:
    verify_bundle(vrf_key, root, bundle)
    _shape(bundle, set(), {0})


def _shape(bundle: Bundle, present: set[int], absent: set[int]) -> None:
    got_present = {p.version for p in bundle.present}
    got_absent = {v for v, _ in bundle.absent}
    if got_present != present or got_absent != absent:
        raise InvalidInput(
            "the proof does not show the versions a directory answer must show",
            code="invalid_keydir_proof",
        )


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
