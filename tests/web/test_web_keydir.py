"""The web messenger checks contacts' devices against the key directory (issues 17 and 18).

The server names a device for Alice that the directory does not hold (a row and one-time
keys written straight into its database, as a server that lies would: no directory epoch
commits it). Bob, in the browser, must refuse it: no Olm session, no room key, no to-device
message for it, and the conversation says so in words. Alice's real device still decrypts.
Against a real ``clearpost serve`` (SQLite) and Debian's Chromium.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.chromium import chromium
from tests.support.devices import TestDevice
from tests.support.server import ServerProcess
from tests.web.browser import open_tab, register, sdk_user, send, wait_text

pytestmark = pytest.mark.slow

GHOST = "GHOSTDEVICE"


def plant(db: Path, user_id: str) -> TestDevice:
    """A device with validly self-signed keys and claimable one-time keys that its owner
    never made, written into the server's database without a directory epoch."""
    ghost = TestDevice(user_id, GHOST, "no-token")
    con = sqlite3.connect(db, timeout=30)
    try:
        with con:
            con.execute(
                "INSERT INTO devices (user_id, device_id, token_hash, created_at, curve25519,"
                " ed25519, device_keys) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    user_id,
                    GHOST,
                    secrets.token_hex(32),
                    1,
                    ghost.curve,
                    ghost.account.ed25519_key.to_base64(),
                    orjson.dumps(ghost.device_keys()).decode(),
                ),
            )
            for key_id, key in ghost.one_time_keys(5).items():
                con.execute(
                    "INSERT INTO one_time_keys (user_id, device_id, key_id, key_json)"
                    " VALUES (?, ?, ?, ?)",
                    (user_id, GHOST, key_id, orjson.dumps(key).decode()),
                )
    finally:
        con.close()
    return ghost


def ghost_traffic(db: Path, user_id: str) -> tuple[int, int]:
    """(to-device messages queued for the ghost, its one-time keys claimed)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        sent = con.execute(
            "SELECT count(*) FROM to_device WHERE target_user = ? AND target_device = ?",
            (user_id, GHOST),
        ).fetchone()[0]
        claimed = con.execute(
            "SELECT count(*) FROM one_time_keys WHERE user_id = ? AND device_id = ?"
            " AND claimed_at IS NOT NULL",
            (user_id, GHOST),
        ).fetchone()[0]
    finally:
        con.close()
    return int(sent), int(claimed)


async def test_a_device_outside_the_directory_gets_nothing_from_the_browser(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    db = tmp_path / "srv" / "cp.db"
    alice = await sdk_user(http, "alice", tmp_path)
    plant(db, alice.user_id)
    text = f"for-alices-devices-only-{secrets.token_hex(4)}"
    async with chromium() as browser:
        bob = await open_tab(browser, server.url, "bob")
        await register(bob, "bob")
        lookups: list[str] = []  # the worker's requests too: they are the context's
        bob.context.on(
            "request",
            lambda r: lookups.append(r.url) if "/v1/keydir/devices/" in r.url else None,
        )
        await bob.page.goto(server.url + "/#/new")
        await bob.page.wait_for_selector("#members")
        await bob.page.fill("#members", "alice")
        await bob.page.click("form button[type=submit]")
        await bob.page.wait_for_selector("#compose")
        await send(bob, text)
        await wait_text(bob, text)
        # the ghost got nothing: no one-time key claimed, no to-device message (no room key)
        assert ghost_traffic(db, alice.user_id) == (0, 0)
        # the conversation says, in words, which device is not encrypted to and why
        refused = bob.page.locator("#refused")
        await refused.wait_for(state="visible", timeout=20_000)
        words = await refused.inner_text()
        assert GHOST in words and "not in the key directory" in words, words
        assert "refuses to encrypt" in words
        await bob.shot("conversation-refused-device")
        notices = await bob.page.inner_text("#notices")
        assert GHOST in notices, notices
        # the first lookup is whole; the ones after it (the ghost is asked about again) are
        # repeat lookups from the version verified, Alice's version 0
        assert lookups and "since=" not in lookups[0], lookups
        assert len(lookups) > 1 and all(u.endswith("?since=0") for u in lookups[1:]), lookups
        assert bob.foreign_requests() == []
    # Alice's real device decrypts
    await alice.sync()
    conv = next(e.conversation_id for e in await alice.inbox())
    assert text in {m.text for m in await alice.history(conv)}
    await alice.close()
