"""The key directory from the command line, against a real server process (SQLite and
PostgreSQL): a verified lookup, one's own history, a proven absence, the access history
proven complete, and the auditor checking every epoch's transition."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clearpost.cli.main import app
from tests.support.server import ServerProcess


def test_lookup_history_and_audit(server: ServerProcess, tmp_path: Path) -> None:
    runner = CliRunner()

    def cli(who: str, *args: str) -> tuple[int, str]:
        env = {
            "CLEARPOST_SERVER": server.url,
            "CLEARPOST_STORE": str(tmp_path / f"{who}.store"),
            "CLEARPOST_PASSPHRASE": f"{who} store passphrase",
            "CLEARPOST_PASSWORD": "correct horse battery",
        }
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.output

    code, output = cli("alice", "account", "register", "alice", "--json")
    assert code == 0, output
    alice = json.loads(output)
    code, output = cli("bob", "account", "register", "bob")
    assert code == 0, output

    code, output = cli("bob", "directory", "lookup", "@alice", "--json")
    assert code == 0, output
    found = json.loads(output)
    assert found["version"] == 0
    assert [d["device_id"] for d in found["devices"]] == [alice["device_id"]]
    code, output = cli("bob", "directory", "lookup", "@alice")
    assert code == 0 and "proof verified" in output, output

    code, output = cli("bob", "directory", "lookup", "@nobody", "--json")
    assert code == 0, output
    assert json.loads(output)["version"] is None

    code, output = cli("alice", "directory", "history", "--json")
    assert code == 0, output
    assert json.loads(output)["versions"] == [{"version": 0, "devices": [alice["device_id"]]}]
    code, output = cli("alice", "directory", "history")
    assert code == 0 and "(this device)" in output, output

    code, output = cli("alice", "me", "log", "--json")
    assert code == 0, output
    assert json.loads(output)["complete_through"] is not None

    state = tmp_path / "audit.json"
    code, output = cli("auditor", "audit", "verify", "--server", server.url, "--state", str(state))
    assert code == 0, output
    assert "key-directory epoch transitions checked" in output, output
