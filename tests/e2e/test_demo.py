"""``clearpost demo`` tells the whole story, in under a minute, and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_the_whole_story(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "120"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "clearpost", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    text = done.stdout
    for expected in (
        "Alice, Bob and Carol register",
        "agreement v1 is log entry",
        "access logged as entry",
        "1 device at version 0, proven at directory epoch",
        "the server was told only '2 recipients'",
        "Bob sees: [Night Train]",
        "click → 302 to https://streamco.example",
        "device GHOSTDEVICE of @bob:clearpost.localhost is not in the key directory",
        "Bob's own device checks his account in the directory: no change he did not make",
        "epsilon 1.0 spent, once",
        "noisy count",
        "grant",
        "access",
        "complete: the key directory commits to exactly these 2 entries about Alice",
        "re-hashed to the signed root",
        "directory epochs, each recomputed",
        "not in the",
    ):
        assert expected in text, expected
    assert "FOUND" not in text
    assert list(tmp_path.iterdir()) == []  # the temporary data directory is gone
    print(f"demo took {elapsed:.1f} s")
