"""The browser's log verifier (``web/src/verify``) against the same vectors as the Python
one, and against values the Python code computes here (commitments, canonical JSON, a
signed and cosigned checkpoint, a small log with inclusion and consistency proofs).

The TypeScript test ``web/test/verify/vectors.test.ts`` is bundled with the project's
esbuild and run with ``node --test``. Without Node or ``web/node_modules`` (``make
install`` builds them) the test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clearpost.core.canonical import canonical_json
from clearpost.core.tlog import Checkpoint, consistency_proof, inclusion_proof, leaf_hash
from clearpost.core.tlog.cosignature import Cosigner, cosign
from clearpost.core.tlog.entries import (
    access_entry,
    commit,
    commitment,
    device_detail,
    device_entry,
    encode_entry,
    entry_commitment,
    scopes_entry,
)
from clearpost.core.tlog.merkle import root_from_leaf_hashes
from clearpost.core.tlog.note import Signer, format_note, parse_note_unverified
from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
ESBUILD = WEB / "node_modules" / ".bin" / "esbuild"
ORIGIN = "clearpost.localhost/log"
USER = "@alice:clearpost.localhost"


def esbuild(entry: Path, out: Path, *, platform: str = "node") -> Path:
    """A TypeScript test under ``web/test`` bundled by the project's esbuild into ``out``
    (an ES module, for Node or the browser)."""
    subprocess.run(
        [
            str(ESBUILD),
            str(entry),
            "--bundle",
            f"--platform={platform}",
            "--format=esm",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        check=True,
        cwd=WEB,
    )
    return out


def _need_node() -> str:
    node = shutil.which("node")
    if node is None or not ESBUILD.exists():
        reason = "the TypeScript verifier tests need node and web/node_modules (make install)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return node


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def fixtures() -> dict[str, Any]:
    """A small log of 10 entries, three of them about ``USER``, signed at sizes 5, 8, 10."""
    salt = bytes(range(32))
    signer = Signer.from_seed(ORIGIN, b"\x07" * 32)
    witness = Cosigner.from_seed("witness.example/w1", b"\x09" * 32)
    detail = device_detail("BROWSERDEV", "curve-key", "ed-key")
    mine: dict[int, tuple[bytes, bytes]] = {}
    bodies = []
    for i in range(10):
        nonce = bytes([i]) * 32
        if i == 2:
            c = commit(salt, USER, nonce, detail)
            body = device_entry(c.subject, "added", 1000 + i)
        elif i in (4, 6):
            c = commit(salt, USER, nonce)
            body = access_entry(
                "streamco",
                "share:intent",
                "POST /v1/partner/share-intents",
                c.subject,
                "share intent",
                1,
                1000 + i,
            )
        else:
            body = scopes_entry({"version": i, "note": "filler é ü 😀"}, 1000 + i)
        raw = encode_entry(body)
        bodies.append(raw)
        if i in (2, 4, 6):
            mine[i] = (raw, c.opening)
    leaves = [leaf_hash(b) for b in bodies]

    def note(size: int) -> str:
        cp = Checkpoint(ORIGIN, size, root_from_leaf_hashes(leaves[:size]))
        return cp.sign([signer]).decode()

    current = note(8)
    text = Checkpoint(ORIGIN, 8, root_from_leaf_hashes(leaves[:8])).to_text()
    _, log_sig = parse_note_unverified(current)
    cosigned = format_note(text, [*log_sig, cosign(text, witness, 1_700_000_000)]).decode()
    entries = [
        {
            "index": i,
            "entry": _b64(raw),
            "opening": json.loads(opening),
            "proof": [_b64(h) for h in inclusion_proof(leaves, i, 8)],
        }
        for i, (raw, opening) in sorted(mine.items())
    ]
    canonical = [
        {"a": 1, "b": [True, None, -0.0, 1e21, 0.5], "é": 'ü\u2028\n"', "A": {"z": 1, "_": 2}},
        {"\u20ac": 1, "\U0001f600": 2, "\ufb33": 3, "1": 4, "\u0080": 5},
        [1.0, 100, 1.5e-7, 123456789012345, "\u001f"],
    ]
    return {
        "origin": ORIGIN,
        "user": USER,
        "log_vkey": signer.vkey,
        "witness_vkey": witness.vkey,
        "witness_name": witness.name,
        "size": 8,
        "note": current,
        "cosigned_note": cosigned,
        "cosigned_at": 1_700_000_000,
        "smaller_size": 5,
        "smaller_note": note(5),
        "larger_note": note(10),
        "consistency": {"5-8": [_b64(h) for h in consistency_proof(leaves, 5, 8)]},
        "answer": {
            "user_id": USER,
            "salt": _b64(salt),
            "subject": commitment(salt, USER),
            "checkpoint": current,
            "size": 8,
            "total": 3,
            "next_start": None,
            "entries": entries,
        },
        "canonical": [
            {"json": json.dumps(v, ensure_ascii=False), "canonical": canonical_json(v).decode()}
            for v in canonical
        ],
        "commitments": [
            {
                "salt": _b64(salt),
                "user": user,
                "nonce": _b64(nonce),
                "detail": d,
                "v1": commitment(salt, user),
                "v2": entry_commitment(salt, user, nonce, d),
            }
            for user, nonce, d in [
                (USER, b"\x01" * 32, None),
                ("@zoë:clearpost.localhost", b"\xfe" * 32, detail),
            ]
        ],
    }


def test_the_browser_verifier_passes_the_python_vectors(tmp_path: Path) -> None:
    node = _need_node()
    fx = tmp_path / "fixtures.json"
    fx.write_text(json.dumps(fixtures(), ensure_ascii=False))
    bundle = esbuild(WEB / "test" / "verify" / "vectors.test.ts", tmp_path / "vectors.test.mjs")
    env = {"TLOG_VECTORS": str(ROOT / "tests" / "vectors" / "tlog"), "VERIFY_FIXTURES": str(fx)}
    run = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(bundle)],
        capture_output=True,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for line in ("# pass 10", "# fail 0", "# skipped 0"):
        assert line in run.stdout, run.stdout
