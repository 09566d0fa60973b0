"""The partner story and the access history in the web app, with real processes and a real
browser (Debian's Chromium driven by Playwright).

A ``clearpost serve`` process (SQLite) with one witness key configured; the example StreamCo
app (``examples/partner_app``) as its own process; Alice and Bob as two browsers of the web
app, each a device with keys made in the browser. Alice connects StreamCo on the consent page
(and reads the agreement it links to), StreamCo suggests a share, the suggestion shows up in
Alice's web app, she sends it to Bob and to Carol (who uses the Python SDK: the card the
browser makes is the SDK's ``ShareCard``), Bob's web app decrypts the card ("via StreamCo") and
he follows the link; a second suggestion goes to a conversation she ticks; Alice's access
history verifies every record in her browser (inclusion proofs to a checkpoint whose Ed25519
signature is checked there, the witness's cosignature, consistency with the checkpoint the
browser saw before); she disconnects StreamCo on the connected-apps page and the revocation
appears, verified.

A second test tampers with the server's stored log (an entry's bytes, then a proof node)
and the access history shows the failure.

Screenshots of every page are written to ``$CLEARPOST_SCREENSHOTS`` (default: the test's
temporary directory); they are artifacts, not committed. Every request any page makes must
go to the two local servers. Without Chromium, Playwright or the built web app the tests are
skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from clearpost.client import MessageEvent, ShareCard
from clearpost.core.tlog.cosignature import Cosigner, cosign
from clearpost.core.tlog.nodes import NodeId
from clearpost.core.tlog.note import parse_note_unverified
from clearpost.core.tlog.tiles import locate
from tests.conftest import IN_CI
from tests.e2e.conftest import People
from tests.e2e.test_partner_flow import (
    Partner,
    _need_browser,
    partner_app,
    register_partner,
    server_row,
)
from tests.support import api
from tests.support.chromium import chromium
from tests.support.server import ServerProcess, free_port, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "src" / "clearpost" / "web" / "app" / "app.js"
PASSWORD = "correct horse battery"
WITNESS = Cosigner.from_seed("witness.example/w1", b"\x05" * 32)


def _need_app() -> None:
    _need_browser()
    if not APP.exists():
        reason = "the web app is not built (make install runs npm run build)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def clearpost(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(
        tmp_path / "srv",
        f"sqlite+aiosqlite:///{tmp_path / 'srv' / 'cp.db'}",
        # entries about people counted at most every second: the access history says so,
        # and the tests wait for a count as a person would
        {"CLEARPOST_LOG_WITNESSES": WITNESS.vkey, "CLEARPOST_KEYDIR_LOG_SECONDS": "1"},
    )
    try:
        yield proc
    finally:
        proc.stop()


def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("CLEARPOST_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


class Hosts:
    """Every URL any page asked for; all must be on the given local origins."""

    def __init__(self, *origins: str) -> None:
        self.allowed = {urlsplit(o).netloc for o in origins}
        self.seen: list[str] = []

    def watch(self, context: Any) -> None:
        context.on("request", lambda request: self.seen.append(request.url))

    def check(self) -> None:
        foreign = [
            u
            for u in self.seen
            if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc not in self.allowed
        ]
        assert not foreign, foreign
        assert self.seen


async def web_user(browser: Any, hosts: Hosts, url: str, name: str) -> Any:
    """A fresh browser profile (its own device) that registers ``name`` in the web app."""
    context = await browser.new_context(viewport={"width": 1000, "height": 900})
    hosts.watch(context)
    page = await context.new_page()
    page.on("dialog", lambda d: d.accept())
    await page.goto(url + "/#/register")
    await page.wait_for_selector("body[data-ready=true]")
    await page.fill("#username", name)
    await page.fill("#password", PASSWORD)
    await page.click("form button[type=submit]")
    await page.wait_for_selector("#inbox", timeout=60_000)
    return page


async def verified_history(
    page: Any, want: int, *, witnessed: bool = False
) -> list[dict[str, str]]:
    """Open the access history and press "Check again" until ``want`` records are verified
    (a new record waits for the next signed checkpoint, within about a second)."""
    if page.url.endswith("#/access"):
        await page.click("#check-again")
    else:
        await page.goto(page.url.split("#")[0] + "#/access")
    deadline = time.monotonic() + 30
    while True:
        await page.wait_for_selector("#access-result:not([aria-busy]) #verdict")
        rows = await page.eval_on_selector_all(
            "#entries li",
            "els => els.map(e => ({index: e.dataset.index, status: e.dataset.status,"
            " type: e.dataset.type, text: e.innerText}))",
        )
        verdict = await page.get_attribute("#verdict", "data-verdict")
        assert verdict == "verified", await page.inner_text("#verdict")
        done = len(rows) == want and all(r["status"] == "verified" for r in rows)
        if done and witnessed:
            done = all("witnessed" in r["text"] for r in rows)
        if done:
            return rows
        assert time.monotonic() < deadline, rows
        await page.click("#check-again")


async def complete_history(page: Any, want: int) -> str:
    """Press "Check again" until the key directory counts ``want`` records (an epoch counts
    the records of the checkpoints before it); the completeness line's words."""
    deadline = time.monotonic() + 30
    while True:
        line = page.locator("#complete")
        await line.wait_for()
        words = await line.inner_text()
        if words.startswith(f"✓ Complete: the public key directory counts {want} records"):
            assert re.search(r"entries \(counted at \d{1,2}:\d\d:\d\d", words), words
            assert words.endswith(  # the server counts at most every second (conftest)
                "Newer records are counted within about a second: the directory counts them "
                "at most every second."
            ), words
            return words
        assert time.monotonic() < deadline, words
        await page.click("#check-again")
        await page.wait_for_selector("#access-result:not([aria-busy]) #verdict")


async def cosign_latest(url: str) -> int:
    """Play the witness: cosign the log's latest checkpoint (the server verifies and keeps it)."""
    async with httpx.AsyncClient(base_url=url) as http:
        note = (await http.get("/v1/log/checkpoint")).text
        text, _ = parse_note_unverified(note)
        size = int(text.split("\n")[1])
        line = cosign(text, WITNESS, int(time.time())).to_line().removesuffix("\n")
        r = await http.post("/v1/log/cosignatures", json={"size": size, "cosignature": line})
        assert r.status_code in (204, 409), r.text
        return size


async def test_the_partner_story_and_the_access_history_in_the_browser(
    clearpost: ServerProcess, tmp_path: Path
) -> None:
    _need_app()
    out = shots(tmp_path)
    port = free_port()
    creds = register_partner(clearpost, tmp_path, port)
    with partner_app(clearpost, tmp_path, port, creds["client_secret"]) as streamco:
        hosts = Hosts(clearpost.url, streamco.url, streamco.link_base)
        async with chromium() as browser, httpx.AsyncClient(base_url=clearpost.url) as http:
            alice = await web_user(browser, hosts, clearpost.url, "alice")
            bob = await web_user(browser, hosts, clearpost.url, "bob")
            people = People(http, tmp_path / "stores")
            try:
                # Carol uses the Python SDK: the card the browser sends is one it reads too
                carol = await people.register("carol")
                streamco_page = await connect_streamco(alice, streamco, out)
                await share_to_bob_and_carol(alice, out)
                (card,) = [
                    e.message.content
                    for e in await carol.sync()
                    if isinstance(e, MessageEvent) and isinstance(e.message.content, ShareCard)
                ]
                assert card.via == "StreamCo" and card.title == "Night Train (Season 2, episode 3)"
                assert card.url.startswith(clearpost.url + "/s/")
            finally:
                await people.close()
            await bob_clicks(bob, streamco, tmp_path, out)
            await share_to_a_conversation(alice, streamco_page, bob)
            await history_and_revoke(alice, clearpost, out)
        hosts.check()


async def connect_streamco(alice: Any, streamco: Partner, out: Path) -> Any:
    page = await alice.context.new_page()
    await page.goto(streamco.url + "/watch/night-train")
    await page.click("#connect")
    await page.wait_for_selector("#sign-in")
    await page.fill("#username", "alice")
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in")
    await page.wait_for_selector("#allow")
    await page.screenshot(path=str(out / "consent.png"), full_page=True)
    # the consent page links to the agreement as a readable page, not raw JSON
    href = await page.get_attribute("#agreement-link", "href")
    assert href == "/agreements/streamco"
    reader = await alice.context.new_page()
    await reader.goto(page.url.split("/oauth/")[0] + href)
    assert await reader.inner_text("h1") == "StreamCo's agreement with Clearpost"
    scopes = await reader.locator("#user-scopes li").all_inner_texts()
    assert any("Suggest something for you to share" in s for s in scopes)
    await reader.screenshot(path=str(out / "agreement.png"), full_page=True)
    await reader.close()
    await page.click("#allow")
    await page.wait_for_selector("#clearpost-user")
    await page.click("#share")
    await page.wait_for_selector("#notice")
    assert (await page.inner_text("#notice")).startswith("Sent to your Clearpost app")
    return page


async def share_to_bob_and_carol(alice: Any, out: Path) -> None:
    # the suggestion arrives over the live connection and is announced in Alice's app
    notice = alice.locator("#notices .notice", has_text="StreamCo suggests you share")
    await notice.wait_for(timeout=30_000)
    await notice.get_by_role("button", name="Choose who gets it").click()
    await alice.wait_for_selector("article.intent")
    assert "Night Train" in await alice.inner_text("article.intent h2")
    await alice.screenshot(path=str(out / "shares.png"), full_page=True)
    await alice.fill("article.intent input[id^=friends-]", "bob, carol")
    await alice.click("article.intent button[type=submit]")
    sent = alice.locator("article.intent .sent")
    await sent.wait_for(timeout=60_000)
    assert (await sent.inner_text()).startswith("Sent to 2 people, end-to-end encrypted.")
    await alice.screenshot(path=str(out / "shares-sent.png"), full_page=True)


async def bob_clicks(bob: Any, streamco: Partner, tmp_path: Path, out: Path) -> None:
    link = bob.locator("#inbox a[data-conversation]")
    await link.first.wait_for(timeout=60_000)
    await link.first.click()
    card = bob.locator("#messages li", has_text="via StreamCo")
    await card.wait_for(timeout=60_000)
    assert "Night Train" in await card.inner_text()
    await bob.screenshot(path=str(out / "card.png"), full_page=True)
    async with bob.context.expect_page() as opened:
        await card.get_by_role("link", name="Open the link").click()
    target = await opened.value
    await target.wait_for_load_state()
    assert target.url == streamco.link_base + "/watch/night-train"
    clicks = server_row(tmp_path, "SELECT count(*) FROM clicks")
    assert clicks == (1,)
    await target.close()


async def share_to_a_conversation(alice: Any, streamco_page: Any, bob: Any) -> None:
    """A second suggestion, sent to a conversation picked from the list (the direct one with
    Bob, which the first share created): Bob gets a second card."""
    await alice.goto(alice.url.split("#")[0] + "#/")
    await streamco_page.click("#share")
    await streamco_page.wait_for_selector("#notice")
    notice = alice.locator("#notices .notice", has_text="StreamCo suggests you share").last
    await notice.wait_for(timeout=30_000)
    await alice.goto(alice.url.split("#")[0] + "#/shares")
    form = alice.locator("article.intent")
    await form.first.wait_for()
    assert await form.count() == 1  # the first one is done
    boxes = form.locator("input[type=checkbox][data-conversation]")
    assert await boxes.count() == 2  # the direct conversations with Bob and with Carol
    await form.get_by_label("bob", exact=True).check()
    await form.locator("button[type=submit]").click()
    sent = form.locator(".sent")
    await sent.wait_for(timeout=60_000)
    assert (await sent.inner_text()).startswith("Sent to 1 person")
    cards = bob.locator("#messages li", has_text="via StreamCo")
    await cards.nth(1).wait_for(timeout=60_000)


async def history_and_revoke(alice: Any, clearpost: ServerProcess, out: Path) -> None:
    # grant, profile:basic access, share:intent accesses: each verified in the browser (the
    # device keys are in the key directory, not the access history)
    rows = await verified_history(alice, 4)
    assert [r["type"] for r in rows] == ["grant", "access", "access", "access"]
    # and none is left out: the key directory's count of her records (once an epoch has
    # counted them all) is exactly the list
    complete = await complete_history(alice, 4)
    assert "these are exactly the ones listed here" in complete
    assert "StreamCo used “profile:basic”" in rows[1]["text"]
    assert all("StreamCo used “share:intent”" in r["text"] for r in rows[2:])
    # the witness cosigns; the history then shows its cosignature, the records witnessed,
    # and that the tree extends the one this browser verified before
    await cosign_latest(clearpost.url)
    rows = await verified_history(alice, 4, witnessed=True)
    facts = await alice.inner_text("#log-facts")
    assert "witness.example/w1 cosigned the tree of" in facts
    assert "this browser verified before" in facts
    await alice.screenshot(path=str(out / "access-history.png"), full_page=True)
    await narrow(alice, out / "access-history-375.png")
    # connected apps: the scopes in plain words, the agreement, disconnect
    await alice.goto(alice.url.split("#")[0] + "#/apps")
    app = alice.locator("li.app[data-partner=streamco]")
    await app.wait_for()
    text = await app.inner_text()
    assert "Suggest something for you to share with friends" in text
    assert await app.locator("a.agreement-link").get_attribute("href") == "/agreements/streamco"
    await alice.screenshot(path=str(out / "connected-apps.png"), full_page=True)
    await narrow(alice, out / "connected-apps-375.png")
    await app.get_by_role("button", name="Disconnect StreamCo").click()
    await alice.wait_for_selector("li.app[data-partner=streamco][data-connected=false]")
    await alice.screenshot(path=str(out / "connected-apps-revoked.png"), full_page=True)
    rows = await verified_history(alice, 5)
    assert rows[4]["type"] == "revocation"


async def test_a_tampered_log_shows_as_a_failure_in_the_access_history(
    clearpost: ServerProcess, tmp_path: Path
) -> None:
    _need_app()
    out = shots(tmp_path)
    db = tmp_path / "srv" / "cp.db"
    port = free_port()
    creds = register_partner(clearpost, tmp_path, port)
    with partner_app(clearpost, tmp_path, port, creds["client_secret"]) as streamco:
        hosts = Hosts(clearpost.url, streamco.url, streamco.link_base)
        async with chromium() as browser:
            alice = await web_user(browser, hosts, clearpost.url, "alice")
            await connect_streamco(alice, streamco, out)  # a grant and two accesses about her
            await tampered_history(alice, clearpost, tmp_path, db, out)
    hosts.check()


async def tampered_history(
    alice: Any, clearpost: ServerProcess, tmp_path: Path, db: Path, out: Path
) -> None:
    rows = await verified_history(alice, 3)
    index = int(rows[0]["index"])
    # one more entry after Alice's, so both her leaf's neighbours are in the tree
    async with httpx.AsyncClient(base_url=clearpost.url, timeout=30) as http:
        await api.user(http, "bob")
        for _ in range(300):
            if int((await http.get("/v1/log/checkpoint")).text.split("\n")[1]) > index + 1:
                break
            await asyncio.sleep(0.1)
    (body,) = server_row(tmp_path, "SELECT body FROM tlog_entries WHERE idx = ?", index)

    # 1. the stored entry is changed (still canonical JSON, one digit of its time)
    changed = bytes(body).replace(b'"time":1', b'"time":2', 1)
    assert changed != bytes(body)
    write(db, "UPDATE tlog_entries SET body = ? WHERE idx = ?", changed, index)
    await failed_history(alice, "log_not_included", index, out / "access-tampered-entry.png")
    write(db, "UPDATE tlog_entries SET body = ? WHERE idx = ?", bytes(body), index)
    await verified_history(alice, 3)

    # 2. a stored proof node (the entry's sibling leaf) is changed in its tile
    tile, position = locate(NodeId(0, index ^ 1))
    (hashes,) = server_row(
        tmp_path,
        "SELECT hashes FROM tlog_tiles WHERE level = ? AND idx = ?",
        tile.level,
        tile.index,
    )
    hashes = bytes(hashes)
    evil = hashes[: 32 * position] + b"\x66" * 32 + hashes[32 * position + 32 :]
    write(
        db,
        "UPDATE tlog_tiles SET hashes = ? WHERE level = ? AND idx = ?",
        evil,
        tile.level,
        tile.index,
    )
    await failed_history(alice, "log_not_included", index, out / "access-tampered-proof.png")
    write(
        db,
        "UPDATE tlog_tiles SET hashes = ? WHERE level = ? AND idx = ?",
        hashes,
        tile.level,
        tile.index,
    )

    # 3. the server leaves a record out of the list (it "forgets" whose it is): the key
    # directory's count of her records shows it
    for _ in range(300):  # an epoch counts her records once a checkpoint holds them
        if server_row(tmp_path, "SELECT max(through) FROM keydir_epochs")[0] > index:
            break
        await asyncio.sleep(0.1)
    (subject, opening) = server_row(
        tmp_path, "SELECT subject, opening FROM tlog_entries WHERE idx = ?", index
    )
    write(db, "UPDATE tlog_entries SET subject = NULL, opening = NULL WHERE idx = ?", index)
    await failed_history(alice, "log_incomplete", None, out / "access-incomplete.png")
    assert "left 1 out of your history" in await alice.inner_text("#verdict")
    restore = "UPDATE tlog_entries SET subject = ?, opening = ? WHERE idx = ?"
    write(db, restore, subject, opening, index)
    await verified_history(alice, 3)

    # 3b. the server hides when it counted her records: it shows no epoch for the count, or
    # epochs whose inclusion proofs do not end at the answer's checkpoint
    for change, code in (
        (lambda doc: doc.update(counted=[]), "keydir_invalid_proof"),
        (
            lambda doc: [
                c.update(inclusion=[base64.b64encode(bytes(32)).decode()]) for c in doc["counted"]
            ],
            "keydir_not_in_log",
        ),
    ):
        await alice.context.route("**/v1/me/keydir/log", rewriting(change))
        await failed_history(alice, code, None, out / f"access-count-{code}.png")
        await alice.context.unroute("**/v1/me/keydir/log")
    await verified_history(alice, 3)

    # 4. the log is rolled back to an older checkpoint than this browser verified
    (size,) = server_row(tmp_path, "SELECT max(size) FROM tlog_checkpoints")
    write(db, "DELETE FROM tlog_cosignatures WHERE size = ?", size)
    write(db, "DELETE FROM tlog_checkpoints WHERE size = ?", size)
    await failed_history(alice, "log_rollback", None, out / "access-rolled-back.png")


def rewriting(change: Any) -> Any:
    """A route handler: the server's JSON answer, changed by ``change`` (in place)."""

    async def rewrite(route: Any) -> None:
        response = await route.fetch()
        doc = orjson.loads(await response.body())
        assert doc["counted"], doc  # (the epoch that counted, or the one before it)
        change(doc)
        await route.fulfill(response=response, body=orjson.dumps(doc))

    return rewrite


async def narrow(page: Any, shot: Path) -> None:
    """At 375 px wide nothing runs off the side."""
    size = page.viewport_size
    await page.set_viewport_size({"width": 375, "height": 800})
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.screenshot(path=str(shot), full_page=True)
    await page.set_viewport_size(size)


def write(db: Path, sql: str, *args: object) -> None:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.execute(sql, args)
        conn.commit()


async def failed_history(page: Any, code: str, index: int | None, shot: Path) -> None:
    await page.click("#check-again")
    await page.wait_for_selector("#access-result:not([aria-busy]) #verdict[data-verdict=failed]")
    alert = page.locator("#verdict")
    assert await alert.get_attribute("role") == "alert"
    assert await alert.get_attribute("data-code") == code
    assert "Verification FAILED" in await alert.inner_text()
    assert "Do not trust this history" in await alert.inner_text()
    if index is not None:
        entry = page.locator(f"#entries li[data-index='{index}']")
        assert await entry.get_attribute("data-status") == "failed"
        assert "is not in the log's signed tree" in await entry.inner_text()
    elif code == "log_rollback":
        assert "the log was rolled back" in await alert.inner_text()
    await page.screenshot(path=str(shot), full_page=True)
