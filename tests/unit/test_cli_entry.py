"""``clearpost audit`` loads the auditor only: not the server, its database layer or the
client SDK (a second of imports, which was a quarter of a full audit of a million
entries), and reads exactly as the full command tree does."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("clearpost.server", "clearpost.storage", "clearpost.client", "fastapi", "sqlalchemy")

PROBE = """
import sys
from clearpost.cli import entry
sys.argv = ["clearpost", *sys.argv[1:]]
try:
    entry.main()
except SystemExit as exc:
    code = exc.code
loaded = [m for m in {heavy!r} if m in sys.modules]
print("LOADED:" + ",".join(loaded) + ":EXIT:" + str(code))
"""


def _run(*args: str) -> tuple[str, list[str], str]:
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out, _, tail = run.stdout.rpartition("LOADED:")
    loaded, _, code = tail.strip().partition(":EXIT:")
    return out, [m for m in loaded.split(",") if m], code


def test_audit_loads_no_server_storage_or_sdk() -> None:
    out, loaded, code = _run("audit", "verify", "--help")
    assert code == "0"
    assert "clearpost audit verify" in out and "--server" in out
    assert loaded == []


def test_audit_verify_runs_without_httpx() -> None:
    """Every request of a tile audit is a GET on the auditor's keep-alive connections:
    httpx (and anyio, which it loads on its first request) would be 0.2 s of CPU before
    the first tile is asked for. Nothing listens on port 9 here: exit 3, log unavailable."""
    probe = PROBE.replace("{heavy!r}", repr((*HEAVY, "httpx", "anyio")))
    run = subprocess.run(
        [sys.executable, "-c", probe, "audit", "verify", "--server", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.rpartition("LOADED:")[2].strip() == ":EXIT:3", run.stdout + run.stderr


def test_audit_help_is_the_full_trees() -> None:
    from typer.testing import CliRunner

    from clearpost.cli.main import app

    out, _, _ = _run("audit", "--help")
    full = CliRunner().invoke(
        app, ["audit", "--help"], prog_name="clearpost", env={"COLUMNS": "80"}
    )
    assert _words(out) == _words(full.output)


def _words(text: str) -> list[str]:
    """The words of a help screen, without rich's box drawing (wrapping may differ)."""
    return text.replace("│", " ").replace("─", " ").split()


def test_other_commands_still_load_the_full_tree() -> None:
    _, loaded, code = _run("db", "--help")
    assert code == "0"
    assert "clearpost.server" in loaded
