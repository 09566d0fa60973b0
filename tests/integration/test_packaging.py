"""What an operator installs: the wheel the Dockerfile builds carries everything the server
reads at run time, and the image builds where a Docker engine runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_wheel_carries_templates_migrations_and_license(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    [wheel] = tmp_path.glob("clearpost-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "clearpost/web/templates/home.html",
        "clearpost/web/templates/consent.html",
        "clearpost/py.typed",
        "clearpost/storage/migrations/env.py",
    ):
        assert needed in names, needed
    assert any(n.startswith("clearpost/storage/migrations/versions/0001_") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return probe.returncode == 0


def test_dockerfile_builds(tmp_path: Path) -> None:
    if not _docker_engine():
        pytest.skip("no Docker engine here (`docker info` fails): the image build is not tried")
    subprocess.run(
        ["docker", "build", "--quiet", "-t", "clearpost:test", "."],
        cwd=ROOT,
        check=True,
        timeout=1200,
    )
    version = subprocess.run(
        ["docker", "run", "--rm", "clearpost:test", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert version.returncode == 0 and "serve" in version.stdout
