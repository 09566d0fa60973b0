"""The browser's key-directory checks (``web/src/verify/keydir.ts``) against the published
vectors in ``tests/vectors/keydir`` (the same the Python core passes): VRF outputs and the
proofs that must be refused, commitments, and lookup, absence and history proofs, each also
tampered with, and when a ``log:`` answer's count was taken (``count.json``).

The TypeScript test ``web/test/keydir/vectors.test.ts`` is bundled with the project's
esbuild and run with ``node --test``; skipped without Node or ``web/node_modules`` (``make
install`` builds them), except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.web.test_verify_vectors import ROOT, WEB, _need_node, esbuild


def test_the_browser_directory_checks_pass_the_keydir_vectors(tmp_path: Path) -> None:
    node = _need_node()
    bundle = esbuild(WEB / "test" / "keydir" / "vectors.test.ts", tmp_path / "keydir.test.mjs")
    run = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(bundle)],
        capture_output=True,
        text=True,
        env={"KEYDIR_VECTORS": str(ROOT / "tests" / "vectors" / "keydir"), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for line in ("# pass 8", "# fail 0", "# skipped 0"):
        assert line in run.stdout, run.stdout
