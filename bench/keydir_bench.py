"""Key-directory core benchmark: proof sizes and epoch times on a 1,000,000-leaf prefix tree.

Run:  .venv/bin/python bench/keydir_bench.py [--leaves 1000000] [--changes 10000]

Pure core, in one process (no server, no database): what ``clearpost.core.keydir`` costs.

1. **Build**: ``PrefixTree.from_leaves`` over ``--leaves`` leaves. Indexes and commitments are
   random 32-byte strings (a real directory's indexes are VRF outputs, uniform as well; making a
   million VRF proofs would take ~11 minutes and measure the VRF, which phase 3 does).
2. **Proof sizes** against that tree, over ``--samples`` labels per kind (median and range: a
   proof's size depends on where its versions fall in the tree) whose versions were inserted
   with real VRF proofs and commitments: a lookup (greatest version 0, 1, 2, 3 and 10: the binary
   ladder grows with the version), a repeat lookup (a contact asking again from the version it
   verified: still that one, or one newer), a history (versions 0..3, and from version 3: what a
   device that checked version 3 before reads), an absence. Bytes are the bundle's byte
   layout (docs/key-directory.md) without the value itself, and the JSON wire size with it.
   The peer: WhatsApp's akd, 2,130 bytes for a lookup proof in its test vectors (a directory
   of 94 versions), and the size of akd's lookup of the same versions on this tree: its
   protobuf format laid over the tree's paths (``akd_size.py``; akd itself cannot be built
   here). ``--akd-vector`` checks those wire rules against a file of akd's test vectors.
   Beside them, measured on the same tree and not used by Clearpost: the lookups the draft's
   own ladder would give (``draft_ladder``: version 0 shown as well), and the sizes the
   akd-style *marker* scheme would give (``marker_lookup``, ``marker_history_absent``): a
   shorter lookup, paid for by a longer history at every check a device makes.
3. **Epoch** of ``--changes`` new versions on the full tree, each step timed: VRF proofs of the
   new versions, commitments, ``insert_many`` (the new root), the auditor's update proof
   (``prove_update``) and its verification (``verify_update``) with the proof's size.
4. **Client CPU**: verifying one lookup, one history, one absence (median CPU time of 50),
   which is also what a device pays to monitor itself once.

Times are printed as wall and CPU seconds: on a shared machine the CPU time is the cost.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from akd_size import Trie, check_vector, lookup_size

from clearpost.core.keydir.commit import MAX_VERSION, commit, label_input, new_opening
from clearpost.core.keydir.proofs import (
    Bundle,
    check_absence,
    check_history,
    check_lookup,
    check_lookup_since,
    index_of,
    lookup_ladder,
    make_bundle,
    prove_absence,
    prove_history,
    prove_lookup,
    verify_bundle,
)
from clearpost.core.keydir.tree import PrefixTree, prove_update, verify_update
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash

AKD_LOOKUP_BYTES = 2130
AKD_EPOCH = 105_120
"""The epoch an akd lookup names (a varint): a year of 5-minute epochs."""
COUNTS = (1, 2, 3, 4, 11)
"""Versions per sampled label: lookups of greatest version 0, 1, 2, 3 and 10."""
DEVICES = orjson.dumps(
    [
        {
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "device_id": f"DEVICE{i}",
            "keys": {f"curve25519:DEVICE{i}": "A" * 43, f"ed25519:DEVICE{i}": "B" * 43},
            "signatures": {"@alice:example.org": {f"ed25519:DEVICE{i}": "C" * 86}},
            "user_id": "@alice:example.org",
        }
        for i in range(2)
    ],
    option=orjson.OPT_SORT_KEYS,
)


@dataclass(frozen=True)
class Version:
    version: int
    vrf_proof: bytes
    opening: bytes
    value: bytes


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_versions(key: VrfSecretKey, label: bytes, count: int) -> list[Version]:
    return [
        Version(v, key.prove(label_input(label, v)), new_opening(), DEVICES) for v in range(count)
    ]


def leaves_of(label: bytes, versions: list[Version]) -> list[tuple[bytes, bytes]]:
    return [
        (index_of(proof_to_hash(v.vrf_proof)), commit(v.opening, label, v.version, v.value))
        for v in versions
    ]


def median_seconds(fn: object, runs: int = 50) -> float:
    """Median CPU seconds of one call (CPU, not wall: the machine is shared)."""
    times = []
    for _ in range(runs):
        t0 = time.process_time()
        fn()  # type: ignore[operator]
        times.append(time.process_time() - t0)
    return statistics.median(times)


class Timer:
    """Wall and CPU seconds of a block (CPU time is this process's alone: on a busy machine
    the wall time includes waiting for a core)."""

    def __enter__(self) -> Timer:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def __str__(self) -> str:
        return f"{self.wall:.2f} s (CPU {self.cpu:.2f} s)"


def must(ok: bool) -> None:
    if not ok:
        sys.exit("a proof verified to another answer than the one it was made for")


def spread(sizes: list[int]) -> str:
    """Median bytes, and the range, of one kind of proof over the sampled labels."""
    return f"{statistics.median(sizes):,.0f} B ({min(sizes):,}-{max(sizes):,})"


def marker_lookup(n: int) -> tuple[list[int], list[int]]:
    """(present, absent) versions of a lookup of greatest version ``n`` in the akd-style
    marker scheme: ``n``, the greatest power of two not above it, and ``n + 1`` absent."""
    return sorted({n, 1 << (n.bit_length() - 1)} if n else {0}), [n + 1]


def draft_ladder(n: int) -> tuple[list[int], list[int]]:
    """(present, absent) versions of a lookup of greatest version ``n`` with the draft's own
    ladder, which shows version 0 present as well (Clearpost's did until 2026-12)."""
    present, absent = lookup_ladder(n)
    return sorted({0, *present}), absent


def marker_history_absent(n: int) -> list[int]:
    """What a history of ``0..n`` must show absent in the marker scheme so that every lookup
    of a greatest version above ``n`` shows one of them present: the versions up to the next
    power of two, and every power of two above ``n`` (versions are below 2^32)."""
    return list(range(n + 1, 1 << n.bit_length())) + [
        1 << j for j in range(32) if n < (1 << j) <= MAX_VERSION
    ]


def _marker_scheme_is_sound(upto: int = 300) -> None:
    """The property the measured alternative needs (else its numbers mean nothing)."""
    for n in range(upto):
        absent = set(marker_history_absent(n))
        for m in range(n + 1, 2 * upto):
            if not absent & set(marker_lookup(m)[0]):
                sys.exit(f"marker scheme: a lookup of {m} escapes a history of 0..{n}")


def proof_bytes(bundle: Bundle) -> int:
    opened = sum(len(p.value) for p in bundle.present if p.value is not None)
    return len(bundle.to_bytes()) - opened


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50, help="labels per proof kind")
    parser.add_argument(
        "--akd-vector",
        type=Path,
        help="one of akd's test-vector files (examples/src/test_vectors/whatsapp_v1.yaml): "
        "its lookup proof, sized again by akd_size.py's wire rules, must come to its length",
    )
    args = parser.parse_args()
    akd_checked = ""
    if args.akd_vector:  # first: a wrong model is not worth a million leaves
        size, sized = check_vector(args.akd_vector.read_text())
        if size != sized:
            sys.exit(f"akd_size.py sizes akd's vector at {sized:,} B, not its {size:,} B")
        akd_checked = f"{size:,} B, sized alike"
    rows: list[tuple[str, str, str]] = []
    key = VrfSecretKey.from_seed(os.urandom(32))
    pk = key.public_key

    # 1. build
    print(f"generating {args.leaves:,} random leaves ...", flush=True)
    leaves = [(os.urandom(32), os.urandom(32)) for _ in range(args.leaves)]
    # SAMPLES labels per greatest version: a proof's size depends on where its versions fall
    # in the random tree, so one label's proof is not "the" size
    labels = {
        (n, i): f"devices:@user{n}-{i}:example.org".encode()
        for n in COUNTS
        for i in range(args.samples)
    }
    versions = {k: make_versions(key, lbl, k[0]) for k, lbl in labels.items()}
    for k, lbl in labels.items():
        leaves += leaves_of(lbl, versions[k])
    rss_before = rss_mb()
    with Timer() as build:
        tree = PrefixTree.from_leaves(leaves)
    akd_trie = Trie(sorted(index for index, _ in leaves))
    del leaves
    rows.append(("build", f"{len(tree):,} leaves", str(build)))
    rows.append(
        ("memory", "tree (max RSS growth while building)", f"{rss_mb() - rss_before:.0f} MB")
    )
    print(f"built in {build}", flush=True)

    # 2. proof sizes
    root = tree.root()

    def sizes_row(name: str, prove: Any, check: Any, n: int, what: str) -> None:
        """One row: ``prove(label, versions)`` over the sampled labels with ``n`` versions,
        each checked by ``check(bundle)``."""
        sizes, jsons = [], []
        for i in range(args.samples):
            bundle = prove(labels[n, i], versions[n, i])
            check(bundle)
            sizes.append(proof_bytes(bundle))
            jsons.append(len(orjson.dumps(bundle.to_json())))
        shown = what.format(present=len(bundle.present), absent=len(bundle.absent))
        json_size = f"JSON with values {statistics.median(jsons):,.0f} B"
        rows.append((name, shown, f"{spread(sizes)} ({json_size})"))

    for n in COUNTS:
        sizes_row(
            f"lookup proof, version {n - 1}",
            lambda lbl, mine: prove_lookup(tree, key, lbl, mine),
            lambda bundle, n=n: must(check_lookup(pk, root, bundle)[0] == n - 1),
            n,
            "{present} present + {absent} absent versions",
        )
    for n in COUNTS[1:]:  # a contact asking again, from the version it verified
        sizes_row(
            f"repeat lookup, still version {n - 1}",
            lambda lbl, mine, n=n: prove_lookup(tree, key, lbl, mine, since=n - 1),
            lambda bundle, n=n: must(check_lookup_since(pk, root, bundle, n - 1)[0] == n - 1),
            n,
            "{present} present + {absent} absent versions",
        )
    sizes_row(
        "repeat lookup, version 10 from 9",
        lambda lbl, mine: prove_lookup(tree, key, lbl, mine, since=9),
        lambda bundle: must(check_lookup_since(pk, root, bundle, 9)[0] == 10),
        11,
        "{present} present + {absent} absent versions",
    )
    sizes_row(
        "history proof, versions 0..3",
        lambda lbl, mine: prove_history(tree, key, lbl, mine),
        lambda bundle: check_history(pk, root, bundle),
        4,
        "{present} opened + {absent} absent",
    )
    for n in (4, 11):  # a device's routine check: nothing new since the version it verified
        sizes_row(
            f"history proof, still version {n - 1}",
            lambda lbl, mine, n=n: prove_history(tree, key, lbl, mine, since=n - 1),
            lambda bundle, n=n: must(check_history(pk, root, bundle, since=n - 1) == []),
            n,
            "{present} opened + {absent} absent (a device's next check)",
        )
    sizes_row(
        "history proof, version 10 from 9",
        lambda lbl, mine: prove_history(tree, key, lbl, mine, since=9),
        lambda bundle: must(len(check_history(pk, root, bundle, since=9)) == 1),
        11,
        "{present} opened + {absent} absent (one new version)",
    )
    # the alternative, on the same tree and labels (not what Clearpost serves)
    _marker_scheme_is_sound()

    def marker_bundle(
        lbl: bytes, mine: list[Version], present: list[int], absent: list[int], opened: list[int]
    ) -> Bundle:
        bundle = make_bundle(tree, key, lbl, [mine[v] for v in present], absent, opened)
        verify_bundle(pk, root, bundle)
        return bundle

    for n in COUNTS[1:]:
        sizes_row(
            f"  alternative: the draft's ladder (version 0 too), version {n - 1}",
            lambda lbl, mine, n=n: marker_bundle(lbl, mine, *draft_ladder(n - 1), [n - 1]),
            lambda bundle: None,
            n,
            "{present} present + {absent} absent versions",
        )
    for n in COUNTS[1:]:
        sizes_row(
            f"  alternative: marker lookup, version {n - 1}",
            lambda lbl, mine, n=n: marker_bundle(lbl, mine, *marker_lookup(n - 1), [n - 1]),
            lambda bundle: None,  # verified as it is made
            n,
            "{present} present + {absent} absent versions",
        )
    for n in (4, 11):
        sizes_row(
            f"  alternative: marker history, still version {n - 1}",
            lambda lbl, mine, n=n: marker_bundle(lbl, mine, [], marker_history_absent(n - 1), []),
            lambda bundle: None,
            n,
            "{present} opened + {absent} absent (a device's next check)",
        )
    absences = [
        prove_absence(tree, key, f"devices:@nobody{i}:example.org".encode())
        for i in range(args.samples)
    ]
    for absence in absences:
        check_absence(pk, root, absence)
    json_size = statistics.median(len(orjson.dumps(a.to_json())) for a in absences)
    rows.append(
        (
            "absence proof",
            "versions 0 and 1 absent",
            f"{spread([len(a.to_bytes()) for a in absences])} (JSON {json_size:,.0f} B)",
        )
    )
    rows.append(
        ("  peer: akd lookup proof", "its test vectors (94 versions)", f"{AKD_LOOKUP_BYTES:,} B")
    )
    for n in COUNTS:
        sizes = [
            akd_lookup(akd_trie, key, labels[n, i], versions[n, i]) for i in range(args.samples)
        ]
        rows.append(
            (
                f"  peer: akd lookup, version {n - 1} (akd's {n})",
                "its wire format on this tree",
                spread(sizes),
            )
        )
    del akd_trie
    if akd_checked:
        rows.append(("  peer: akd_size.py's wire rules", args.akd_vector.name, akd_checked))
    rows.append(
        ("  value: 2-device list", "canonical JSON, not counted above", f"{len(DEVICES):,} B")
    )

    # 3. an epoch of --changes new versions
    print(f"epoch of {args.changes:,} changes ...", flush=True)
    with Timer() as t_vrf:
        fresh = []
        for i in range(args.changes):
            lbl = f"devices:@new{i}:example.org".encode()
            fresh.append((lbl, key.prove(label_input(lbl, 0))))
    with Timer() as t_commit:
        inserted = {
            index_of(proof_to_hash(pi)): commit(new_opening(), lbl, 0, DEVICES) for lbl, pi in fresh
        }
    with Timer() as t_update_proof:
        update = prove_update(tree, list(inserted))
    old_root = tree.root()
    with Timer() as t_insert:
        new_root = tree.insert_many(inserted.items())
    with Timer() as t_verify:
        verify_update(old_root, new_root, update, inserted)
    parts = (t_vrf, t_commit, t_insert, t_update_proof)
    total = f"{sum(t.wall for t in parts):.2f} s (CPU {sum(t.cpu for t in parts):.2f} s)"
    per_vrf = t_vrf.cpu / args.changes * 1e3
    before = f"on {len(tree) - args.changes:,}"
    rows.append((f"epoch: {args.changes:,} VRF proofs", f"{per_vrf:.2f} ms CPU each", str(t_vrf)))
    rows.append(("epoch: commitments", "SHA-256 each", str(t_commit)))
    rows.append(("epoch: insert_many -> new root", before, str(t_insert)))
    rows.append(("epoch: prove_update", f"{len(update.to_bytes()):,} B", str(t_update_proof)))
    rows.append(("epoch: total for the server", "VRF + commit + insert + proof", total))
    rows.append(("auditor: verify_update", "old root -> new root", str(t_verify)))

    # 4. client CPU
    lookup = prove_lookup(tree, key, labels[4, 0], versions[4, 0])
    history = prove_history(tree, key, labels[4, 0], versions[4, 0])
    root = tree.root()
    for name, bundle, check in (
        ("verify lookup (version 3)", lookup, check_lookup),
        ("verify history (0..3)", history, check_history),
        ("verify absence", absence_at(tree, key), check_absence),
    ):
        sec = median_seconds(lambda b=bundle, c=check: c(pk, root, b))
        rows.append(
            (
                name,
                f"{len(bundle.present) + len(bundle.absent)} VRF verifications",
                f"{sec * 1e3:.2f} ms CPU",
            )
        )

    width = [max(len(r[i]) for r in rows) for i in range(3)]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nload average at the end: {load} ({os.cpu_count()} cores)")
    print(f"| {'measure':<{width[0]}} | {'detail':<{width[1]}} | {'result':<{width[2]}} |")
    print(f"|{'-' * (width[0] + 2)}|{'-' * (width[1] + 2)}|{'-' * (width[2] + 2)}|")
    for a, b, c in rows:
        print(f"| {a:<{width[0]}} | {b:<{width[1]}} | {c:<{width[2]}} |")


def akd_lookup(trie: Trie, key: VrfSecretKey, label: bytes, mine: list[Version]) -> int:
    """Bytes of akd's lookup of the greatest of ``mine`` (versions 0..n-1 here are akd's
    1..n) on ``trie``, without the value: its version's path, its marker version's (the
    greatest power of two not above it), and the absence of a label not in the tree (akd's
    *stale* label of the version, a VRF output like the rest)."""
    n = len(mine)
    marker = 1 << (n.bit_length() - 1)
    index = [leaf for leaf, _ in leaves_of(label, mine)]
    stale = index_of(proof_to_hash(key.prove(label_input(label, n))))
    return lookup_size(
        trie.path(index[n - 1]),
        trie.path(index[marker - 1]),
        trie.absence(stale),
        epoch=AKD_EPOCH,
        version=n,
    )


def absence_at(tree: PrefixTree, key: VrfSecretKey) -> Bundle:
    return prove_absence(tree, key, b"devices:@nobody:example.org")


if __name__ == "__main__":
    main()
