"""The ``clearpost account`` and ``clearpost chat`` commands against a real server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from clearpost.cli.main import app
from tests.e2e.conftest import assert_no_plaintext, secret_text
from tests.support.server import ServerProcess


def test_register_send_and_read_history(server: ServerProcess, db_url: str, tmp_path: Path) -> None:
    runner = CliRunner()

    def cli(who: str, *args: str, passphrase: str | None = None) -> tuple[int, str]:
        env = {
            "CLEARPOST_SERVER": server.url,
            "CLEARPOST_STORE": str(tmp_path / f"{who}.store"),
            "CLEARPOST_PASSPHRASE": passphrase or f"{who} store passphrase",
            "CLEARPOST_PASSWORD": "correct horse battery",
        }
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.output

    code, output = cli("alice", "account", "register", "alice", "--json")
    assert code == 0, output
    alice = json.loads(output)
    assert alice["user_id"] == "@alice:clearpost.localhost"
    code, output = cli("bob", "account", "register", "bob")
    assert code == 0 and "registered @bob:clearpost.localhost" in output, output

    text = secret_text("cli")
    code, output = cli("alice", "chat", "send", "@bob:clearpost.localhost", text, "--json")
    assert code == 0, output
    sent = json.loads(output)
    assert sent["seq"] == 1

    code, output = cli("bob", "chat", "inbox", "--json")
    assert code == 0, output
    inbox = json.loads(output)["conversations"]
    assert [(c["conversation_id"], c["unread"]) for c in inbox] == [(sent["conversation_id"], 1)]

    code, output = cli("bob", "chat", "history", sent["conversation_id"], "--json")
    assert code == 0, output
    [message] = json.loads(output)["messages"]
    assert message["state"] == "decrypted" and message["content"] == {"type": "text", "body": text}
    assert message["sender"] == alice["user_id"]
    assert message["sender_device"] == alice["device_id"]

    # readable output, by the short form of a user id: @alice is @alice on this server
    code, output = cli("bob", "chat", "history", "@alice")
    assert code == 0 and text in output and "@alice:clearpost.localhost" in output, output
    code, output = cli("bob", "chat", "send", "@alice:elsewhere.example", "hi")
    assert code == 1 and "(foreign_user_id)" in output, output
    code, output = cli("bob", "chat", "problems")  # no key event was refused
    assert code == 0 and "no refused key events" in output, output
    code, output = cli("bob", "chat", "problems", "--json")
    assert code == 0 and json.loads(output) == {"key_problems": []}, output
    code, output = cli("bob", "chat", "inbox", "--json")
    assert json.loads(output)["conversations"][0]["unread"] == 0

    code, output = cli("alice", "account", "devices", "--json")
    assert code == 0, output
    [device] = json.loads(output)["devices"]
    assert device["verified"] and device["this_device"]

    code, output = cli("bob", "chat", "inbox", passphrase="not the passphrase")
    assert code == 1 and "wrong passphrase" in output

    code, output = cli("bob", "account", "logout", "--json")
    assert code == 0 and json.loads(output)["store_deleted"], output
    assert not (tmp_path / "bob.store").exists()

    asyncio.run(assert_no_plaintext(server, db_url, [text], stores=[tmp_path / "alice.store"]))
