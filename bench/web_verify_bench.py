"""How long the web app's access history takes to verify N records, in Node 20's WebCrypto
(the page's API; Chromium's own numbers come from tests/web's screenshots run, not here).

Builds a log of ``--size`` entries, ``--mine`` of them about one person (version-2
commitments, each with its opening), with the Python code; the TypeScript verifier then
checks every commitment and inclusion proof against the signed checkpoint, seven times.
Prints the median and the best, and the same work done by the Python SDK's checks.

Run: ``.venv/bin/python bench/web_verify_bench.py [--size 4096] [--mine 1000]``
(needs ``make install`` for web/node_modules).
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from clearpost.core.tlog import Checkpoint, inclusion_proof, leaf_hash, verify_inclusion
from clearpost.core.tlog.entries import (
    access_entry,
    commit,
    commitment,
    encode_entry,
    open_commitment,
    scopes_entry,
)
from clearpost.core.tlog.merkle import root_from_leaf_hashes
from clearpost.core.tlog.note import Signer

ROOT = Path(__file__).resolve().parents[1]
USER = "@alice:clearpost.localhost"
ORIGIN = "clearpost.localhost/log"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def build(size: int, mine: int) -> dict[str, object]:
    salt = bytes(range(32))
    signer = Signer.from_seed(ORIGIN, b"\x07" * 32)
    step = size // mine
    bodies, openings = [], {}
    for i in range(size):
        if i % step == 0 and len(openings) < mine:
            c = commit(salt, USER, i.to_bytes(32, "big"))
            body = access_entry(
                "streamco",
                "share:intent",
                "POST /v1/partner/share-intents",
                c.subject,
                "share_intent",
                1,
                1_700_000_000_000 + i,
            )
            openings[i] = c.opening
        else:
            body = scopes_entry({"version": i}, 1_700_000_000_000 + i)
        bodies.append(encode_entry(body))
    leaves = [leaf_hash(b) for b in bodies]
    note = Checkpoint(ORIGIN, size, root_from_leaf_hashes(leaves)).sign([signer]).decode()
    entries = [
        {
            "index": i,
            "entry": b64(bodies[i]),
            "opening": json.loads(opening),
            "proof": [b64(h) for h in inclusion_proof(leaves, i, size)],
        }
        for i, opening in openings.items()
    ]
    answer = {
        "user_id": USER,
        "salt": b64(salt),
        "subject": commitment(salt, USER),
        "checkpoint": note,
        "size": size,
        "total": mine,
        "next_start": None,
        "entries": entries,
    }
    return {"origin": ORIGIN, "user": USER, "log_vkey": signer.vkey, "size": size, "answer": answer}


def python_checks(fx: dict[str, object]) -> float:
    """The SDK's per-entry work (commitment opening + inclusion proof), for comparison."""
    answer = fx["answer"]
    assert isinstance(answer, dict)
    salt = base64.b64decode(answer["salt"])
    root = Checkpoint.parse(answer["checkpoint"].split("\n\n")[0] + "\n").root_hash
    t0 = time.perf_counter()
    for e in answer["entries"]:
        body = base64.b64decode(e["entry"])
        subject = json.loads(body)["subject"]
        assert open_commitment(salt, USER, e["opening"], subject)
        proof = [base64.b64decode(h) for h in e["proof"]]
        verify_inclusion(leaf_hash(body), e["index"], answer["size"], proof, root)
    return (time.perf_counter() - t0) * 1000


def chromium(bundle: Path, fx: dict[str, object]) -> dict[str, Any]:
    """The same bundle in Debian's headless Chromium (Playwright), on an empty page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # a secure context (WebCrypto needs one), served by Playwright itself: no server
        page.route("http://localhost/", lambda route: route.fulfill(body="<!doctype html>"))
        page.goto("http://localhost/")
        page.evaluate("fx => { globalThis.verifyBench = fx; }", fx)
        page.add_script_tag(content=bundle.read_text(), type="module")
        for _ in range(1200):
            if errors or page.evaluate("globalThis.benchResult !== undefined"):
                break
            time.sleep(0.1)
        assert not errors, errors
        result: dict[str, Any] = page.evaluate("globalThis.benchResult")
        result["version"] = browser.version
        browser.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--mine", type=int, default=1000)
    parser.add_argument("--chromium", action="store_true", help="also in /usr/bin/chromium")
    args = parser.parse_args()
    fx = build(args.size, args.mine)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "fx.json"
        data.write_text(json.dumps(fx))
        bundle = Path(tmp) / "bench.mjs"
        subprocess.run(
            [
                str(ROOT / "web/node_modules/.bin/esbuild"),
                str(ROOT / "bench/web_verify.ts"),
                "--bundle",
                "--platform=node",
                "--format=esm",
                f"--outfile={bundle}",
                "--log-level=warning",
            ],
            check=True,
        )
        out = subprocess.run(
            ["node", str(bundle)],
            check=True,
            capture_output=True,
            text=True,
            env={"VERIFY_BENCH": str(data), "PATH": "/usr/bin:/bin"},
        )
        browser = chromium(bundle, fx) if args.chromium else None
    result = json.loads(out.stdout)
    ms = result["ms"]
    py = sorted(python_checks(fx) for _ in range(5))
    print(f"log of {args.size} entries, {args.mine} about the person (version-2 commitments)")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(
        f"TypeScript verifier (Node {node} WebCrypto), whole history: "
        f"median {statistics.median(ms):.0f} ms, best {ms[0]:.0f} ms "
        f"({statistics.median(ms) * 1000 / args.mine:.0f} us a record)"
    )
    if browser is not None:
        print(
            f"TypeScript verifier in Chromium ({browser['version']}), whole history: "
            f"median {statistics.median(browser['ms']):.0f} ms, best {browser['ms'][0]:.0f} ms"
        )
    print(
        f"Python SDK checks, same records:  median {statistics.median(py):.0f} ms, "
        f"best {py[0]:.0f} ms"
    )


if __name__ == "__main__":
    main()
