"""The web messenger checks contacts' devices against the key directory, and its own account's
(issues 17 and 18).

The server names a device for Alice that the directory does not hold (a row and one-time
keys written straight into its database, as a server that lies would: no directory epoch
commits it). Bob, in the browser, must refuse it: no Olm session, no room key, no to-device
message for it, and the conversation says so in words. Alice's real device still decrypts.
And the server adds a device to a browser user's account through the directory, telling her
devices nothing: her browser finds it at its next check of her own label and says so.
Against a real ``clearpost serve`` (SQLite) and Debian's Chromium.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.chromium import chromium
from tests.support.devices import TestDevice
from tests.support.server import ServerProcess
from tests.web.browser import open_tab, register, sdk_user, send, wait_text

pytestmark = pytest.mark.slow

GHOST = "GHOSTDEVICE"


def plant(db: Path, user_id: str, *, in_directory: bool = False) -> TestDevice:
    """A device with validly self-signed keys and claimable one-time keys that its owner
    never made, written into the server's database: without a directory epoch, or (``in
    directory``) marked for the next one, as a server adding a ghost through the directory
    would do. Nothing tells the owner's devices (no device-list change in their sync)."""
    ghost = TestDevice(user_id, GHOST, "no-token")
    con = sqlite3.connect(db, timeout=30)
    try:
        with con:
            if in_directory:
                con.execute("INSERT INTO keydir_dirty (user_id, since) VALUES (?, ?)", (user_id, 1))
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


def account(db: Path, username: str) -> str:
    """The user id of the account ``username`` (its server name is the server's)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute(
            "SELECT user_id FROM devices WHERE user_id LIKE ?", (f"@{username}:%",)
        ).fetchone()
    finally:
        con.close()
    return str(row[0])


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


async def test_a_device_added_through_the_directory_is_announced_in_the_owners_browser(
    server: ServerProcess, tmp_path: Path
) -> None:
    db = tmp_path / "srv" / "cp.db"
    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        checks: list[str] = []
        alice.context.on(
            "request",
            lambda r: checks.append(r.url) if "/v1/me/keydir/devices" in r.url else None,
        )
        await register(alice, "alice")
        status = await check_now(alice, server.url, "version 0 of your")
        assert await alice.page.locator("#notices .notice.bad").count() == 0
        # the server adds a device to her account through the directory, and says nothing
        plant(db, account(db, "alice"), in_directory=True)
        for _ in range(40):  # the next epoch: within a second or two
            await alice.page.get_by_role("button", name="Check now").click()
            await alice.page.wait_for_timeout(500)
            if "version 1 of your" in await status.inner_text():
                break
        alarm = alice.page.locator("#notices .notice.bad", has_text=GHOST)
        await alarm.wait_for(timeout=20_000)
        words = await alarm.inner_text()
        assert "A new device signed in to your account" in words, words
        assert "key directory lists it" in words and "contacts encrypt to it" in words, words
        await alice.shot("own-device-added-through-the-directory")
        # kept with the device: after a reload it is listed under Your devices
        await alice.page.reload()
        await alice.page.goto(server.url + "/#/devices")
        kept = alice.page.locator("#directory-changes li", has_text=GHOST)
        await kept.wait_for(timeout=20_000)
        assert "version 1" in await kept.inner_text()
        await alice.shot("own-devices-changes-kept")
        await alice.page.set_viewport_size({"width": 375, "height": 800})  # a phone: no overflow
        assert await alice.page.evaluate("document.documentElement.scrollWidth") <= 375
        await alice.shot("own-devices-changes-kept-375")
        # the first check read the whole history; the later ones only what came after
        assert checks and "since=" not in checks[0], checks
        assert len(checks) > 2 and all("?since=" in u for u in checks[1:]), checks
        assert alice.foreign_requests() == []


async def test_a_heartbeat_longer_than_any_server_may_state_fails_the_browsers_check(
    server: ServerProcess,
) -> None:
    """A server that says it may go a year without an epoch would have the browser accept a
    directory frozen that long: the browser's check of its own account fails, in words."""

    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        await alice.context.route("**/v1/keydir/key", rewritten("heartbeat_seconds", 31_536_000))
        await register(alice, "alice")
        words = await (await check_now(alice, server.url, "failed")).inner_text()
        assert "may go 31,536,000 s" in words, words
        assert "no server may wait more than 86,400 s" in words, words
        await alice.shot("own-devices-heartbeat-refused")


async def test_a_vrf_key_the_log_does_not_state_fails_the_browsers_check(
    server: ServerProcess,
) -> None:
    """A server that hands this browser a VRF key of its own could answer its lookups under
    labels no account's owner checks: every epoch states the key in the signed log, and
    the browser's check of its own account fails, in words, on another one."""
    other = "B" * 43 + "="  # 32 bytes of base64, not the directory's key
    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        await alice.context.route("**/v1/keydir/key", rewritten("vrf_public_key", other))
        await register(alice, "alice")
        words = await (await check_now(alice, server.url, "failed")).inner_text()
        assert f"this browser was handed {other}" in words, words
        assert "labels under a key the log does not state" in words, words
        await alice.shot("own-devices-vrf-key-refused")


async def test_an_epoch_dated_ahead_of_the_browsers_clock_fails_its_check(
    server: ServerProcess,
) -> None:
    """An epoch dated a day ahead would pass for current for a day, so a server could
    freeze this browser's view on it: with the clock of the browser's crypto worker (which
    checks the directory) a day behind the server's, its check of its own account fails,
    in words that point at the clock. (Playwright's clock does not reach workers, so the
    worker's script is served with its clock set back.)"""

    async def a_day_behind(route: Any) -> None:
        response = await route.fetch()
        shim = b"{const real = Date.now; Date.now = () => real() - 86400000;}\n"
        await route.fulfill(response=response, body=shim + await response.body())

    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        await alice.context.route("**/worker.js", a_day_behind)
        await alice.page.reload()  # the worker started with the page: start it again
        await alice.page.wait_for_selector("body[data-ready]")
        await register(alice, "alice")
        words = await (await check_now(alice, server.url, "failed")).inner_text()
        assert "s ahead of this browser's clock" in words, words
        assert "check this computer's clock" in words, words
        await alice.shot("own-devices-epoch-dated-ahead")


def rewritten(field: str, value: object) -> Any:
    """A Playwright route handler that passes the server's JSON answer on with ``field``
    set to ``value``: a server telling this browser something it tells no one else."""

    async def handle(route: Any) -> None:
        response = await route.fetch()
        doc = orjson.loads(await response.body())
        doc[field] = value
        await route.fulfill(response=response, body=orjson.dumps(doc))

    return handle


async def check_now(tab: Any, url: str, words: str) -> Any:
    """On *Your devices*, press **Check now** and wait for the status to say ``words``;
    returns the status line."""
    await tab.page.goto(url + "/#/devices")
    status = tab.page.locator("#directory-check")
    await status.wait_for(timeout=20_000)
    await tab.page.get_by_role("button", name="Check now").click()
    await tab.page.locator("#directory-check", has_text=words).wait_for(timeout=20_000)
    return status
