"""Account lifecycle and administration against a real ``clearpost serve``, on SQLite and
PostgreSQL: password change, removing a lost device, group membership from the CLI,
account deletion with erasure, suspension, invites, and partner suspension and secret
rotation (each logged)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from clearpost.cli.main import app
from tests.e2e.conftest import raw_database_text
from tests.support import api
from tests.support.partner import AGREEMENT, REDIRECT, approve, code_from
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.slow
PASSWORD = api.PASSWORD


async def cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """A ``clearpost`` command, on a thread (each command runs its own event loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output


def person(server: ServerProcess, tmp_path: Path, who: str) -> dict[str, str]:
    return {
        "CLEARPOST_SERVER": server.url,
        "CLEARPOST_STORE": str(tmp_path / f"{who}.store"),
        "CLEARPOST_PASSPHRASE": f"{who} store passphrase",
        "CLEARPOST_PASSWORD": PASSWORD,
    }


def admin_flags(server: ServerProcess, db_url: str) -> list[str]:
    return ["--database", db_url, "--data-dir", str(server.log_path.parent)]


async def wait_for(check: Any, seconds: float = 10.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


async def test_password_devices_and_groups_from_the_cli(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice, bob, carol = (person(server, tmp_path, n) for n in ("alice", "bob", "carol"))
    for name, env in (("alice", alice), ("bob", bob), ("carol", carol)):
        code, out = await cli("account", "register", name, env=env)
        assert code == 0, out
    second = {**alice, "CLEARPOST_STORE": str(tmp_path / "alice-2.store")}
    code, out = await cli("account", "login", "alice", "--json", env=second)
    assert code == 0, out
    lost = json.loads(out)["device_id"]

    code, out = await cli("account", "remove-device", lost, env=alice)
    assert code == 0 and f"device {lost} removed" in out, out
    code, out = await cli("chat", "inbox", env=second)  # the lost device's token is dead
    assert code == 1 and "invalid_token" in out, out
    code, out = await cli("account", "devices", "--json", env=alice)
    assert [d["device_id"] for d in json.loads(out)["devices"]] != [lost]
    assert lost not in out

    new = "a much better password"
    code, out = await cli("account", "password", "--new", new, env=alice)
    assert code == 0 and "password changed" in out, out
    async with httpx.AsyncClient(base_url=server.url) as http:
        old = await http.post("/v1/login", json={"username": "alice", "password": PASSWORD})
        assert old.status_code == 401
        ok = await http.post("/v1/login", json={"username": "alice", "password": new})
        assert ok.status_code == 200
    wrong = {**alice, "CLEARPOST_PASSWORD": "not the password"}
    code, out = await cli("account", "password", "--new", "whatever else", env=wrong)
    assert code == 1 and "invalid_credentials" in out

    code, out = await cli("chat", "new-group", "@bob", "--json", env=alice)
    assert code == 0, out
    group = json.loads(out)["conversation_id"]
    code, out = await cli("chat", "add", group, "@carol", env=alice)
    assert code == 0 and "@carol added" in out, out
    code, out = await cli("chat", "inbox", "--json", env=carol)
    assert group in out
    code, out = await cli("chat", "remove", group, "@carol", env=bob)  # only the creator
    assert code == 1 and "not_group_admin" in out, out
    code, out = await cli("chat", "remove", group, "@carol", env=alice)
    assert code == 0, out
    code, out = await cli("chat", "leave", group, env=bob)
    assert code == 0 and "you left" in out, out
    code, out = await cli("chat", "inbox", "--json", env=bob)
    assert group not in out


async def test_delete_account_erases_it_and_the_log_still_audits(
    server: ServerProcess, db_url: str, tmp_path: Path
) -> None:
    alice, carol = person(server, tmp_path, "alice"), person(server, tmp_path, "carolyn")
    for name, env in (("alice", alice), ("carolyn", carol)):
        code, out = await cli("account", "register", name, env=env)
        assert code == 0, out
    code, out = await cli("chat", "send", "@alice", "hello from carolyn", env=carol)
    assert code == 0, out
    agreement = tmp_path / "streamco.toml"
    agreement.write_text(AGREEMENT)
    code, out = await cli(
        "partner", "register", str(agreement), "--json", *admin_flags(server, db_url)
    )
    assert code == 0, out
    secret = json.loads(out)["client_secret"]

    async with httpx.AsyncClient(base_url=server.url, follow_redirects=False) as http:
        # carolyn consents to StreamCo (a logged grant) and the partner gets a token
        verifier = "v" * 48
        challenge = (
            base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            .rstrip(b"=")
            .decode()
        )
        url = (
            f"/oauth/authorize?response_type=code&client_id=streamco&redirect_uri={REDIRECT}"
            f"&scope=profile:basic&state=s1&code_challenge={challenge}&code_challenge_method=S256"
        )
        code_params = code_from(await approve(http, url, "carolyn", PASSWORD))
        token = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code_params["code"][0],
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=("streamco", secret),
        )
        assert token.status_code == 200, token.text
        partner_token = token.json()["access_token"]
        me = await http.get("/v1/partner/me", headers={"Authorization": f"Bearer {partner_token}"})
        assert me.status_code == 200, me.text

        login = await http.post("/v1/login", json={"username": "carolyn", "password": PASSWORD})
        device = login.json()["access_token"]
        mine = (
            await http.get("/v1/me/log-entries", headers={"Authorization": f"Bearer {device}"})
        ).json()
        salt = base64.b64decode(mine["salt"] + "=" * (-len(mine["salt"]) % 4))
        assert len(salt) == 32

        code, out = await cli("account", "delete", "--yes", env=carol)
        assert code == 0 and "account @carolyn:clearpost.localhost deleted" in out, out

        assert (
            await http.get("/v1/devices", headers={"Authorization": f"Bearer {device}"})
        ).status_code == 401
        gone = await http.get(
            "/v1/partner/me", headers={"Authorization": f"Bearer {partner_token}"}
        )
        assert gone.status_code == 401  # the consent was revoked with the account
        again = await http.post("/v1/login", json={"username": "carolyn", "password": PASSWORD})
        assert again.status_code == 401

    # Nothing in the database names the account or holds its salt.
    raw = await raw_database_text(db_url)
    assert b"carolyn" not in raw
    assert salt not in raw and salt.hex().encode() not in raw
    # The message carolyn sent is still there for alice, from a deleted account.
    code, out = await cli("chat", "inbox", "--json", env=alice)
    [conversation] = json.loads(out)["conversations"]
    assert conversation["members"] == ["@alice:clearpost.localhost"]  # carolyn left with it
    code, out = await cli("chat", "history", conversation["conversation_id"], "--json", env=alice)
    [message] = json.loads(out)["messages"]
    assert message["sender"].startswith("@deleted-"), message

    async def audited() -> bool:
        code, out = await cli("audit", "verify", "--server", server.url)
        return code == 0 and "OK log" in out

    assert await wait_for(audited)


async def test_suspension_and_invites(tmp_path: Path, db_url: str) -> None:
    server = start_server(tmp_path / "srv", db_url, {"CLEARPOST_REGISTRATION": "invite"})
    flags = admin_flags(server, db_url)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            body = {"username": "dora", "password": PASSWORD}
            refused = await http.post("/v1/accounts", json=body)
            assert refused.status_code == 403 and refused.json()["code"] == "invite_required"
            code, out = await cli("admin", "invites", "create", "--count", "2", *flags)
            assert code == 0, out
            first, second = out.split()
            bad = await http.post("/v1/accounts", json={**body, "invite": "inv_nope"})
            assert bad.status_code == 403 and bad.json()["code"] == "invalid_invite"
            ok = await http.post("/v1/accounts", json={**body, "invite": first})
            assert ok.status_code == 201, ok.text
            reused = await http.post(
                "/v1/accounts", json={"username": "eve", "password": PASSWORD, "invite": first}
            )
            assert reused.status_code == 403 and reused.json()["code"] == "invalid_invite"
            taken = await http.post("/v1/accounts", json={**body, "invite": second})
            assert taken.status_code == 409  # the name is taken: the invite stays unspent
            ok = await http.post(
                "/v1/accounts", json={"username": "eve", "password": PASSWORD, "invite": second}
            )
            assert ok.status_code == 201, ok.text

            dora = await api.login(http, "dora")
            code, out = await cli("admin", "users", "list", "--json", *flags)
            listed = {u["user_id"]: u for u in json.loads(out)["users"]}
            dora_id = "@dora:clearpost.localhost"
            assert listed[dora_id]["devices"] == 1 and listed[dora_id]["suspended_at"] is None

            code, out = await cli("admin", "users", "suspend", "@dora", *flags)
            assert code == 0, out

            async def refused_now() -> bool:
                r = await http.get("/v1/devices", headers=dora.headers)
                return r.status_code == 403 and r.json()["code"] == "account_suspended"

            assert await wait_for(refused_now)  # at most the token cache's 5 s
            login = await http.post("/v1/login", json=body)
            assert login.status_code == 403 and login.json()["code"] == "account_suspended"
            code, out = await cli("admin", "users", "show", "@dora", *flags)
            assert "SUSPENDED" in out
            code, out = await cli("admin", "users", "unsuspend", "@dora", *flags)
            assert code == 0, out

            async def back() -> bool:
                return (await http.get("/v1/devices", headers=dora.headers)).status_code == 200

            assert await wait_for(back)
            code, out = await cli("admin", "users", "delete", "@eve", "--yes", *flags)
            assert code == 0 and "deleted @eve:clearpost.localhost" in out, out
            code, out = await cli("admin", "users", "delete", "@eve", "--yes", *flags)
            assert code == 1 and "no such user" in out
    finally:
        server.stop()


async def _entries(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    size = int((await http.get("/v1/log/checkpoint")).text.split("\n")[1])
    body = (await http.get("/v1/log/entries", params={"start": 0, "end": size})).json()
    return [json.loads(base64.b64decode(e)) for e in body["entries"]]


async def test_partner_suspension_and_secret_rotation_are_logged(
    server: ServerProcess, db_url: str, tmp_path: Path
) -> None:
    flags = admin_flags(server, db_url)
    agreement = tmp_path / "streamco.toml"
    agreement.write_text(AGREEMENT)
    code, out = await cli("partner", "register", str(agreement), "--json", *flags)
    assert code == 0, out
    old_secret = json.loads(out)["client_secret"]
    grant = {"grant_type": "client_credentials", "scope": "reports:read"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        token = await http.post("/oauth/token", data=grant, auth=("streamco", old_secret))
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}

        code, out = await cli("admin", "partners", "rotate-secret", "streamco", *flags)
        assert code == 0, out
        new_secret = out.strip().splitlines()[-1]
        old = await http.post("/oauth/token", data=grant, auth=("streamco", old_secret))
        assert old.status_code == 401
        assert (
            await http.post("/oauth/token", data=grant, auth=("streamco", new_secret))
        ).status_code == 200

        code, out = await cli("admin", "partners", "suspend", "streamco", *flags)
        assert code == 0 and "suspended" in out, out
        reports = await http.get("/v1/partner/reports", headers=bearer)
        assert reports.status_code == 403 and reports.json()["code"] == "partner_suspended"
        assert (
            await http.post("/oauth/token", data=grant, auth=("streamco", new_secret))
        ).status_code == 401
        code, out = await cli("admin", "partners", "suspend", "streamco", *flags)
        assert code == 1 and "already suspended" in out

        code, out = await cli("admin", "partners", "resume", "streamco", *flags)
        assert code == 0, out
        assert (await http.get("/v1/partner/reports", headers=bearer)).status_code == 200

        async def logged() -> list[str]:
            changes = [e["change"] for e in await _entries(http) if e["type"] == "partner"]
            return changes if len(changes) == 3 else []

        assert await wait_for(logged) == ["secret-rotated", "suspended", "resumed"]
