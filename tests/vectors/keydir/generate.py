"""Regenerate the key directory's test vectors: ``python tests/vectors/keydir/generate.py``.

Everything is deterministic (fixed VRF seed, openings derived from the label and version), so
``tests/unit/keydir/test_keydir_vectors.py`` rebuilds these files and compares them byte for
byte. See README.md beside this file for what each file holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.keydir.commit import commit, label_input
from clearpost.core.keydir.errors import VrfInvalid
from clearpost.core.keydir.proofs import (
    index_of,
    prove_absence,
    prove_history,
    prove_lookup,
)
from clearpost.core.keydir.tree import EMPTY, PrefixTree, prove_update
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash, verify
from clearpost.core.keydir_labels import count_time, log_chain, log_value

HERE = Path(__file__).parent
VRF_SEED = hashlib.sha256(b"clearpost keydir test vectors: VRF seed").digest()

RFC9381_B3 = [
    {
        "sk": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "pk": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "alpha": "",
        "pi": "8657106690b5526245a92b003bb079ccd1a92130477671f6fc01ad16f26f723f26f8a57ccaed74ee1b1"
        "90bed1f479d9727d2d0f9b005a6e456a35d4fb0daab1268a1b0db10836d9826a528ca76567805",
        "beta": "90cf1df3b703cce59e2a35b925d411164068269d7b2d29f3301c03dd757876ff66b71dda49d2de59d0"
        "3450451af026798e8f81cd2e333de5cdf4f3e140fdd8ae",
    },
    {
        "sk": "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "pk": "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "alpha": "72",
        "pi": "f3141cd382dc42909d19ec5110469e4feae18300e94f304590abdced48aed5933bf0864a62558b3ed7f"
        "2fea45c92a465301b3bbf5e3e54ddf2d935be3b67926da3ef39226bbc355bdc9850112c8f4b02",
        "beta": "eb4440665d3891d668e7e0fcaf587f1b4bd7fbfe99d0eb2211ccec90496310eb5e33821bc613efb94d"
        "b5e5b54c70a848a0bef4553a41befc57663b56373a5031",
    },
    {
        "sk": "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "pk": "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "alpha": "af82",
        "pi": "9bc0f79119cc5604bf02d23b4caede71393cedfbb191434dd016d30177ccbf8096bb474e53895c362d8"
        "628ee9f9ea3c0e52c7a5c691b6c18c9979866568add7a2d41b00b05081ed0f58ee5e31b3a970e",
        "beta": "645427e5d00c62a23fb703732fa5d892940935942101e456ecca7bb217c61c452118fec1219202a0ed"
        "cf038bb6373241578be7217ba85a2687f7a0310b2df19f",
    },
]

# Each epoch's changes: (label, value). Versions count up per label from 0.
EPOCHS: list[list[tuple[str, bytes]]] = [
    [],
    [
        ("devices:@alice:example.org", b'[{"device_id":"ALICE1","keys":{"k":"a1"}}]'),
        ("devices:@bob:example.org", b'[{"device_id":"BOB1","keys":{"k":"b1"}}]'),
        ("log:@alice:example.org", b'{"chain":"' + b"00" * 32 + b'","count":0}'),
    ],
    [
        (
            "devices:@alice:example.org",
            b'[{"device_id":"ALICE1","keys":{"k":"a1"}},{"device_id":"ALICE2","keys":{"k":"a2"}}]',
        ),
        ("devices:@carol:example.org", b'[{"device_id":"CAROL1","keys":{"k":"c1"}}]'),
    ],
    [
        ("devices:@alice:example.org", b'[{"device_id":"ALICE2","keys":{"k":"a2"}}]'),
        ("devices:@bob:example.org", b"[]"),
    ],
    [
        ("devices:@alice:example.org", b'[{"device_id":"ALICE3","keys":{"k":"a3"}}]'),
    ],
]


@dataclass(frozen=True)
class Version:
    version: int
    vrf_proof: bytes
    opening: bytes
    value: bytes


def opening_for(label: bytes, version: int) -> bytes:
    return hashlib.sha256(b"vector opening\x00" + label_input(label, version)).digest()[:16]


def vrf_vectors() -> dict[str, Any]:
    key = VrfSecretKey.from_seed(VRF_SEED)
    own = []
    for alpha in [b"", b"devices:@alice:example.org", label_input(b"devices:@alice:x", 0)]:
        pi, beta = key.evaluate(alpha)
        own.append(
            {"alpha": alpha.hex(), "pi": pi.hex(), "beta": beta.hex(), "index": beta[:32].hex()}
        )
    good_pi = bytes.fromhex(own[1]["pi"])
    alpha = bytes.fromhex(own[1]["alpha"])
    s = int.from_bytes(good_pi[48:], "little")
    order = 2**252 + 27742317777372353535851937790883648493
    invalid = [
        ("small-order public key", bytes(32), good_pi),
        ("non-canonical public key (y = p)", bytes.fromhex("ed" + "ff" * 30 + "7f"), good_pi),
        (
            "non-canonical Gamma (y = p + 1)",
            key.public_key,
            bytes.fromhex("ee" + "ff" * 30 + "7f") + good_pi[32:],
        ),
        (
            "non-canonical scalar s + L",
            key.public_key,
            good_pi[:48] + (s + order).to_bytes(32, "little"),
        ),
        (
            "flipped bit in c",
            key.public_key,
            good_pi[:32] + bytes([good_pi[32] ^ 1]) + good_pi[33:],
        ),
    ]
    refused = []
    for reason, pk, pi in invalid:
        try:
            verify(pk, alpha, pi)
        except VrfInvalid:
            refused.append({"why": reason, "pk": pk.hex(), "alpha": alpha.hex(), "pi": pi.hex()})
        else:
            raise RuntimeError(f"a VRF proof that should be refused verifies: {reason}")
    return {
        "suite": "ECVRF-EDWARDS25519-SHA512-TAI (RFC 9381, suite 0x03)",
        "rfc9381_appendix_b3": RFC9381_B3,
        "clearpost": {"seed": VRF_SEED.hex(), "pk": key.public_key.hex(), "outputs": own},
        "must_be_refused": refused,
    }


def commit_vectors() -> list[dict[str, Any]]:
    cases = [
        (bytes(16), b"devices:@alice:example.org", 0, b"[]"),
        (bytes(range(16)), b"devices:@alice:example.org", 1, b'[{"device_id":"A"}]'),
        (bytes(range(32)), b"log:@bob:example.org", 7, b'{"chain":"00","count":1}'),
        (b"\xff" * 16, b"", 4294967295, b""),
    ]
    return [
        {
            "opening": o.hex(),
            "label": lab.decode(),
            "version": v,
            "value": val.hex(),
            "label_input": label_input(lab, v).hex(),
            "commitment": commit(o, lab, v, val).hex(),
        }
        for o, lab, v, val in cases
    ]


def directory_vectors() -> dict[str, Any]:
    key = VrfSecretKey.from_seed(VRF_SEED)
    tree = PrefixTree()
    versions: dict[bytes, list[Version]] = {}
    epochs = []
    for number, changes in enumerate(EPOCHS):
        inserted = []
        new_leaves = []
        for name, value in changes:
            label = name.encode()
            n = len(versions.setdefault(label, []))
            pi = key.prove(label_input(label, n))
            opening = opening_for(label, n)
            versions[label].append(Version(n, pi, opening, value))
            index = index_of(proof_to_hash(pi))
            c = commit(opening, label, n, value)
            new_leaves.append((index, c))
            inserted.append(
                {
                    "label": name,
                    "version": n,
                    "value": value.decode(),
                    "opening": opening.hex(),
                    "vrf_proof": pi.hex(),
                    "index": index.hex(),
                    "commitment": c.hex(),
                }
            )
        old_root = tree.root()
        update = prove_update(tree, [i for i, _ in new_leaves])
        tree.insert_many(new_leaves)
        epochs.append(
            {
                "epoch": number,
                "inserted": inserted,
                "previous_root": old_root.hex(),
                "root": tree.root().hex(),
                "update_proof": update.to_json(),
                "update_proof_bytes": update.to_bytes().hex(),
            }
        )
    alice = b"devices:@alice:example.org"
    bob = b"devices:@bob:example.org"
    nobody = b"devices:@nobody:example.org"
    answers = {
        "lookup_alice": prove_lookup(tree, key, alice, versions[alice]),
        "lookup_bob": prove_lookup(tree, key, bob, versions[bob]),
        "history_alice": prove_history(tree, key, alice, versions[alice]),
        "absence_nobody": prove_absence(tree, key, nobody),
        # repeat lookups by someone who verified version 1, and version 3, of Alice's before
        "lookup_alice_since_1": prove_lookup(tree, key, alice, versions[alice], since=1),
        "lookup_alice_since_3": prove_lookup(tree, key, alice, versions[alice], since=3),
        # a device of Alice's checking her account, having verified her version 1, and 3
        "history_alice_since_1": prove_history(tree, key, alice, versions[alice], since=1),
        "history_alice_since_3": prove_history(tree, key, alice, versions[alice], since=3),
    }
    return {
        "vrf_public_key": key.public_key.hex(),
        "empty_root": EMPTY.hex(),
        "epochs": epochs,
        "final_root": tree.root().hex(),
        # what a `log:` label's value commits to: the hash chain of log entry indexes
        "log_chains": [
            {
                "indexes": idx,
                "count": n,
                "chain": chain.hex(),
                "value": log_value(n, chain).decode(),
            }
            for idx in ([], [0], [3, 17, 2**40 + 5])
            for n, chain in [log_chain(idx)]
        ],
        "proofs": {
            name: {"json": bundle.to_json(), "bytes": bundle.to_bytes().hex()}
            for name, bundle in answers.items()
        },
        "expected": {
            "lookup_alice": {
                "version": len(versions[alice]) - 1,
                "value": versions[alice][-1].value.decode(),
            },
            "lookup_bob": {
                "version": len(versions[bob]) - 1,
                "value": versions[bob][-1].value.decode(),
            },
            "history_alice": [v.value.decode() for v in versions[alice]],
            "absence_nobody": None,
            "lookup_alice_since_1": {
                "since": 1,
                "version": len(versions[alice]) - 1,
                "value": versions[alice][-1].value.decode(),
            },
            "lookup_alice_since_3": {"since": 3, "version": 3, "value": None},
            "history_alice_since_1": {
                "since": 1,
                "values": [v.value.decode() for v in versions[alice][2:]],
            },
            "history_alice_since_3": {"since": 3, "values": []},
        },
    }


T = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
COUNT_CASES: list[tuple[str, list[tuple[int, int, int]], tuple[int, int, int], int, Any]] = [
    # (what, shown, answer, log_seconds, expected: the count's time or an error code)
    ("the answer's epoch counted", [(4, 100, T)], (5, 120, T + 60_000), 60, T + 60_000),
    ("epoch 0, the first", [], (0, 0, T), 60, T),
    ("counted at epoch 0", [(0, 0, T)], (3, 0, T + 30_000), 60, T),
    (
        "counted at epoch 5, answer at 9",
        [(4, 100, T), (5, 120, T + 1_000)],
        (9, 120, T + 100_000),
        60,
        T + 1_000,
    ),
    (
        "exactly log_seconds and the slack late",
        [(4, 100, T), (5, 120, T + 1_000)],
        (9, 120, T + 121_000),
        60,
        T + 1_000,
    ),
    (
        "a millisecond later than that",
        [(4, 100, T), (5, 120, T + 1_000)],
        (9, 120, T + 121_001),
        60,
        "log_count_late",
    ),
    ("an hour late", [(4, 100, T), (5, 120, T)], (30, 120, T + 3_600_000), 60, "log_count_late"),
    ("counting at every epoch", [(4, 100, T)], (5, 120, T + 5), 0, T + 5),
    (
        "the longest interval any server may claim",
        [(4, 100, T), (5, 120, T)],
        (9, 120, T + 3_660_000),
        3_600,
        T,
    ),
    (
        "an interval longer than any server may claim",
        [(4, 100, T), (5, 120, T)],
        (9, 120, T + 1_000),
        3_601,
        "log_count_late",
    ),
    (
        "the first shown without the one before",
        [(5, 120, T)],
        (9, 120, T + 1_000),
        60,
        "invalid_keydir_proof",
    ),
    (
        "the one before with the same through",
        [(4, 120, T), (5, 120, T)],
        (9, 120, T),
        60,
        "invalid_keydir_proof",
    ),
    ("not consecutive", [(3, 100, T), (5, 120, T)], (9, 120, T), 60, "invalid_keydir_proof"),
    (
        "a first epoch with another through",
        [(4, 100, T), (5, 110, T)],
        (9, 120, T),
        60,
        "invalid_keydir_proof",
    ),
    (
        "the answer's own epoch shown",
        [(8, 100, T), (9, 120, T)],
        (9, 120, T),
        60,
        "invalid_keydir_proof",
    ),
    (
        "three shown",
        [(3, 90, T), (4, 100, T), (5, 120, T)],
        (9, 120, T),
        60,
        "invalid_keydir_proof",
    ),
    ("none shown for an epoch after 0", [], (3, 120, T), 60, "invalid_keydir_proof"),
    (
        "a later epoch with the same through shown as the first",
        [(6, 100, T), (7, 120, T)],
        (7, 120, T),
        60,
        "invalid_keydir_proof",
    ),
]


def count_vectors() -> list[dict[str, Any]]:
    """``count_time``: when an answer's ``through`` was set, from the epochs its
    ``counted`` shows (docs/key-directory.md), and whether that is too long ago. Each
    expected result is written here by hand and checked against the code."""
    out = []
    for what, shown, answer, log_seconds, expected in COUNT_CASES:
        try:
            got: Any = count_time(shown, answer, log_seconds)
        except InvalidInput as exc:
            got = exc.code
        assert got == expected, (what, got, expected)
        epoch = lambda e: {"epoch": e[0], "through": e[1], "time": e[2]}  # noqa: E731
        out.append(
            {
                "what": what,
                "counted": [epoch(e) for e in shown],
                "answer": epoch(answer),
                "log_seconds": log_seconds,
                "expected": (
                    {"error": expected} if isinstance(expected, str) else {"time": expected}
                ),
            }
        )
    return out


def render() -> dict[str, str]:
    """File name -> exact file text."""
    files = {
        "vrf.json": vrf_vectors(),
        "commitments.json": commit_vectors(),
        "directory.json": directory_vectors(),
        "count.json": count_vectors(),
    }
    return {name: json.dumps(data, indent=1, sort_keys=True) + "\n" for name, data in files.items()}


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name} ({len(text)} bytes)")


if __name__ == "__main__":
    main()
