"""The ``clearpost`` executable: one error format (``error: <message>`` on stderr, exit 2
for usage and configuration), ``--version``, and no library warnings on every call."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import clearpost


def _clearpost(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARPOST_")}
    return subprocess.run(
        [sys.executable, "-m", "clearpost", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, "COLUMNS": "200", **(env or {})},
        cwd=cwd,
    )


def test_version() -> None:
    done = _clearpost("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"clearpost {clearpost.__version__}"
    assert done.stderr == ""


def test_help_prints_no_deprecation_warning() -> None:
    done = _clearpost("--help")
    assert done.returncode == 0
    assert "Warning" not in done.stderr, done.stderr
    assert "--version" in done.stdout


def test_usage_errors_are_one_error_line_and_exit_2() -> None:
    for args in (["--nope"], ["serve", "--port", "eighty"], ["audit", "verify", "--server", "x"]):
        done = _clearpost(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.splitlines()
        assert lines[0].startswith("error: "), (args, done.stderr)
        assert lines[1:] == [] or lines[1].startswith("Try '"), (args, done.stderr)
        assert "Traceback" not in done.stderr and "╭" not in done.stderr


def test_audit_and_witness_read_the_server_from_clearpost_server(tmp_path: Path) -> None:
    """As the device commands do: the URL comes from the environment when ``--server`` is
    not given (a bad one is refused by name, so the variable was read)."""
    key = tmp_path / "w.key"
    made = _clearpost("witness", "keygen", "--name", "w.example/w1", "--out", str(key))
    assert made.returncode == 0, made.stderr
    for args in (["audit", "verify"], ["witness", "run", "--key", str(key)]):
        done = _clearpost(*args, env={"CLEARPOST_SERVER": "ftp://example.org"})
        assert done.returncode == 2, (args, done.stderr)
        assert "the server URL must start with http:// or https://" in done.stderr, done.stderr


def test_configuration_and_file_errors_share_the_format(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("port = 'x'\n")
    done = _clearpost("db", "upgrade", "--config", str(config), "--data-dir", str(tmp_path))
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        [f"error: in {config}: setting 'port' must be a whole number, not 'x'"],
    )
    missing = tmp_path / "missing.toml"
    done = _clearpost("partner", "register", str(missing), "--data-dir", str(tmp_path))
    assert (done.returncode, done.stderr.splitlines()) == (
        2,
        [f"error: cannot read {missing}: No such file or directory"],
    )


def test_a_refusal_names_its_code(tmp_path: Path) -> None:
    done = _clearpost("partner", "show", "nobody", "--data-dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.rstrip().endswith(")"), done.stderr
