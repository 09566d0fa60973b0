"""Share intents and the log about you, through the CLI and the SDK against a real server
process (SQLite and PostgreSQL), with a real witness cosigning the log."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import AsyncOAuth2Client
from typer.testing import CliRunner

from clearpost.cli.main import app
from clearpost.client import MessageEvent, ShareCard
from tests.e2e.conftest import People
from tests.support.partner import AGREEMENT, REDIRECT, approve, code_from
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


class Cli:
    """``clearpost`` in-process (in a thread: the commands run their own event loop)."""

    def __init__(self, server: ServerProcess, root: Path, db_url: str) -> None:
        self.server, self.root, self.db_url = server, root, db_url
        self.runner = CliRunner()

    async def __call__(self, who: str | None, *args: str, ok: bool = True) -> str:
        env = {
            "CLEARPOST_SERVER": self.server.url,
            "CLEARPOST_PASSWORD": PASSWORD,
            "COLUMNS": "160",
        }
        if who is not None:
            env |= {
                "CLEARPOST_STORE": str(self.root / f"{who}.store"),
                "CLEARPOST_PASSPHRASE": f"{who} store passphrase",
            }
        result = await asyncio.to_thread(self.runner.invoke, app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result.output

    async def json(self, who: str | None, *args: str) -> Any:
        return json.loads(await self(who, *args, "--json"))


@pytest.fixture
def witnessed(tmp_path: Path, db_url: str) -> Iterator[tuple[ServerProcess, Path, str]]:
    """A server whose log keeps the cosignatures of one witness; its key file and vkey."""
    key = tmp_path / "w1.key"
    result = CliRunner().invoke(
        app, ["witness", "keygen", "--name", "witness.example/w1", "--out", str(key)]
    )
    assert result.exit_code == 0, result.output
    vkey = next(w for w in result.output.split() if w.startswith("witness.example/w1+"))
    proc = start_server(tmp_path / "srv", db_url, {"CLEARPOST_LOG_WITNESSES": vkey})
    try:
        yield proc, key, vkey
    finally:
        proc.stop()


async def streamco_token(server: ServerProcess, secret: str) -> AsyncOAuth2Client:
    """StreamCo holding Alice's consent (the consent page driven with httpx here; the
    browser run is tests/e2e/test_partner_flow.py)."""
    oauth = AsyncOAuth2Client(
        client_id="streamco",
        client_secret=secret,
        redirect_uri=REDIRECT,
        scope="profile:basic share:intent",
        code_challenge_method="S256",
        timeout=30,
    )
    verifier = generate_token(48)
    url, _ = oauth.create_authorization_url(server.url + "/oauth/authorize", code_verifier=verifier)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as browser:
        code = code_from(await approve(browser, url, "alice", PASSWORD))["code"][0]
    await oauth.fetch_token(server.url + "/oauth/token", code=code, code_verifier=verifier)
    return oauth


def cards(events: list[Any]) -> list[ShareCard]:
    return [
        e.message.content
        for e in events
        if isinstance(e, MessageEvent) and isinstance(e.message.content, ShareCard)
    ]


async def test_shares_and_the_verified_log_from_the_command_line(
    witnessed: tuple[ServerProcess, Path, str], db_url: str, tmp_path: Path
) -> None:
    server, witness_key, witness_vkey = witnessed
    cli = Cli(server, tmp_path, db_url)
    agreement = tmp_path / "streamco.toml"
    agreement.write_text(AGREEMENT)
    creds = await cli.json(
        None,
        *("partner", "register", str(agreement)),
        *("--data-dir", str(tmp_path / "srv"), "--database", db_url),
    )
    await cli("alice", "account", "register", "alice")

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        people = People(http, tmp_path / "sdk")
        try:
            bob, carol = await people.register("bob"), await people.register("carol")
            streamco = await streamco_token(server, creds["client_secret"])
            try:
                for title in ("Night Train", "The Lighthouse Keeper"):
                    r = await streamco.post(
                        server.url + "/v1/partner/share-intents",
                        json={"title": title, "url": "https://streamco.example/w/" + title[:5]},
                    )
                    assert r.status_code == 201, r.text

                # they reach Alice live too: `chat listen` shows each suggestion
                live = await cli("alice", "chat", "listen", "--json", "--timeout", "2")
                suggested = [
                    json.loads(line)
                    for line in live.splitlines()
                    if line.startswith("{") and '"share_intent"' in line
                ]
                assert [e["title"] for e in suggested] == ["Night Train", "The Lighthouse Keeper"]
                assert {e["partner_name"] for e in suggested} == {"StreamCo"}
                shown = await cli("alice", "chat", "listen", "--timeout", "1.5")
                assert "suggests sharing" not in shown  # already delivered to this device

                # Alice lists her suggestions and sends one to two friends, one to a group
                listed = (await cli.json("alice", "shares", "list"))["share_intents"]
                assert [i["title"] for i in listed] == ["Night Train", "The Lighthouse Keeper"]
                assert all(86_000 < i["expires_in_s"] <= 86_400 for i in listed)
                assert {i["partner_name"] for i in listed} == {"StreamCo"}
                table = await cli("alice", "shares", "list")
                assert "StreamCo" in table and "23 h" in table
                first, second = listed
                sent = await cli.json(
                    "alice",
                    "shares",
                    "send",
                    first["intent_id"][:12],
                    "--to",
                    "@bob",
                    "--to",
                    "carol",
                )
                assert sent["recipients"] == 2 and len(sent["messages"]) == 2
                group = (await cli.json("alice", "chat", "new-group", "@bob", "@carol"))[
                    "conversation_id"
                ]
                said = await cli(
                    "alice", "shares", "send", second["intent_id"], "--conversation", group
                )
                assert "(via StreamCo)" in said and "2 recipients" in said
                assert "told only the number 2" in said
                assert (await cli.json("alice", "shares", "list"))["share_intents"] == []
                refused = await cli(
                    "alice", "shares", "send", first["intent_id"], "--to", "@bob", ok=False
                )
                assert "intent_not_found" in refused

                got = cards(await bob.sync())
                assert [c.title for c in got] == ["Night Train", "The Lighthouse Keeper"]
                assert all(c.via == "StreamCo" and "/s/" in c.url for c in got)
                assert len(cards(await carol.sync())) == 2

                # the witness cosigns; Alice's device verifies her entries against it
                await asyncio.sleep(1.2)  # the sequencer signs within a second
                out = await cli(
                    None,
                    "witness",
                    "run",
                    "--server",
                    server.url,
                    "--key",
                    str(witness_key),
                    "--once",
                )
                log = await cli.json(
                    "alice", "me", "log", "--verify", "--witness", witness_vkey, "--wait", "10"
                )
                assert log["verified"] and log["witnesses"] == ["witness.example/w1"], out
                kinds = [(e["type"], e["partner"], e["endpoint"]) for e in log["entries"]]
                assert kinds == [  # device keys: in the key directory (issue 17)
                    ("grant", "streamco", None),
                    ("access", "streamco", "POST /v1/partner/share-intents"),
                    ("access", "streamco", "POST /v1/partner/share-intents"),
                ]
                assert all(e["verified"] and e["witnessed"] for e in log["entries"])
                assert not log["trusted_on_first_use"]  # pinned at the first sync

                # Alice revokes StreamCo: logged, and its tokens stop working at once
                apps = await cli.json("alice", "me", "apps")
                assert [a["partner"] for a in apps["apps"]] == ["streamco"]
                revoked = await cli.json("alice", "me", "apps", "--revoke", "streamco")
                assert revoked["apps"] == [] and len(revoked["revoked"]["log_indexes"]) == 1
                r = await streamco.post(
                    server.url + "/v1/partner/share-intents",
                    json={"title": "x", "url": "https://streamco.example/x"},
                )
                assert r.status_code == 401
            finally:
                await streamco.aclose()

            shown = await cli("alice", "me", "log", "--verify", "--wait", "10")
            assert "revocation" in shown and "✓ 4 of 4 entries" in shown  # no device entry
            assert "trusted the log key on first use" not in shown  # pinned by the first run
            listed = await cli("alice", "me", "apps", "--all")
            assert "revoked" in listed and "StreamCo" in listed
        finally:
            await people.close()
