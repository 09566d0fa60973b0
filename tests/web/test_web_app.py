"""The web messenger in real browsers against a real ``clearpost serve`` (SQLite).

Two browser users (each a Chromium profile, so each its own device with keys made in the
browser) and a third user on the Python SDK chat directly and in a group; every message is
decrypted by everyone, and afterwards the database's raw bytes hold none of the texts. A
reload keeps keys and history; a second browser device of the same user gets earlier
messages through key sharing from the first (after the person confirms there); a removed
device is signed out, wiped and gets nothing new. No page makes a request to another host.
A screenshot of every page goes to ``test-artifacts/web/`` (not committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from tests.support.chromium import chromium
from tests.support.server import ServerProcess, free_port
from tests.web.browser import (
    Tab,
    open_conversation,
    open_tab,
    register,
    sdk_user,
    send,
    sign_in,
    wait_text,
)

pytestmark = pytest.mark.slow


def secret(label: str) -> str:
    return f"{label}-plaintext-{secrets.token_hex(6)}"


def raw_bytes(data_dir: Path) -> bytes:
    """Every byte the server keeps: the database, its WAL, and anything else there."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


async def no_horizontal_scroll(tab: Tab) -> None:
    width = await tab.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{tab.name}: the page is {width} px wide at 375"


async def test_two_browsers_and_an_sdk_user_chat_directly_and_in_a_group(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    texts = {k: secret(k) for k in ("a1", "b1", "g1", "g2", "g3", "g4", "g5", "name")}
    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        await alice.shot("signin")
        await register(alice, "alice", keyboard=True)  # by keyboard only
        await alice.shot("inbox-empty")
        bob = await open_tab(browser, server.url, "bob", width=375)  # a phone-sized screen
        await bob.page.goto(server.url + "/#/register")
        await bob.page.wait_for_selector("#username")
        await bob.shot("register-375")
        await no_horizontal_scroll(bob)
        await register(bob, "bob")
        carol = await sdk_user(http, "carol", tmp_path)
        server_name = carol.user_id.split(":", 1)[1]

        # 1:1 between the two browsers
        await alice.page.goto(server.url + "/#/new")
        await alice.page.wait_for_selector("#members")
        await alice.shot("new-conversation")
        await alice.page.fill("#members", "bob")
        await alice.page.click("form button[type=submit]")
        await alice.page.wait_for_selector("#compose")
        await send(alice, texts["a1"])
        await wait_text(alice, texts["a1"])
        await bob.page.wait_for_selector("#inbox .badge", timeout=20_000)  # unread
        inbox = await bob.page.inner_text("#inbox")
        assert "alice" in inbox and texts["a1"] in inbox  # name and the decrypted preview
        await bob.shot("inbox-unread-375")
        await open_conversation(bob, "alice")
        await wait_text(bob, texts["a1"])
        await send(bob, texts["b1"])
        await wait_text(alice, texts["b1"])
        await bob.shot("conversation-375")
        await no_horizontal_scroll(bob)
        await alice.shot("conversation")
        # text is shown as text: markup in a message stays characters
        markup = "<img src=x onerror=alert(1)><b>bold?</b>"
        await send(alice, markup)
        await wait_text(bob, markup)
        assert await bob.page.locator("#messages img, #messages b").count() == 0

        # a group with the SDK user, named (the name travels encrypted)
        await alice.page.goto(server.url + "/#/new")
        await alice.page.check("#kind-group")
        await alice.page.fill("#members", f"bob, @carol:{server_name}")
        await alice.page.fill("#group-name", texts["name"])
        await alice.page.click("form button[type=submit]")
        await alice.page.wait_for_selector("#compose")
        await send(alice, texts["g1"])
        await wait_text(alice, texts["g1"])
        await bob.page.goto(server.url + "/#/")
        await bob.page.wait_for_selector(f"#inbox .name:text-is('{texts['name']}')")
        await open_conversation(bob, texts["name"])
        await wait_text(bob, texts["g1"])
        await send(bob, texts["g2"])
        await wait_text(alice, texts["g2"])

        conv = next(e.conversation_id for e in await carol.inbox() if e.kind == "group")
        got = {m.text for m in await carol.history(conv)}
        assert texts["g1"] in got and texts["g2"] in got, got
        await carol.send(conv, texts["g3"])
        await wait_text(alice, texts["g3"])
        await wait_text(bob, texts["g3"])

        # members: the settings page, and removing the SDK user from the group
        await alice.page.click("text=Members and name")
        await alice.page.wait_for_selector("text=Add a member (username)")
        await alice.shot("conversation-settings")
        await alice.page.click("button[aria-label='Remove carol']")
        # (wait_for_function would need eval, which the app's CSP refuses)
        await alice.page.locator("button[aria-label='Remove carol']").wait_for(state="detached")
        await open_conversation(alice, texts["name"])
        await send(alice, texts["g4"])  # after the removal: a new key, not shared with carol
        await wait_text(bob, texts["g4"])
        assert conv not in {e.conversation_id for e in await carol.inbox()}
        # adding her back: she reads what comes next (not what was sent while she was out)
        await alice.page.click("text=Members and name")
        await alice.page.fill("#add-member", "carol")
        await alice.page.click("form:has(#add-member) button[type=submit]")
        await alice.page.wait_for_selector("button[aria-label='Remove carol']")
        await open_conversation(alice, texts["name"])
        await send(alice, texts["g5"])
        await wait_text(alice, texts["g5"])
        got = {m.text for m in await carol.history(conv)}
        assert texts["g5"] in got and texts["g4"] not in got, got
        # bob leaves: the group is gone from his inbox
        await bob.page.click("text=Members and name")
        bob.page.once("dialog", lambda d: d.accept())
        await bob.page.click("text=Leave this group")
        await bob.page.wait_for_selector("#inbox")
        await bob.page.locator(f"#inbox .name:text-is('{texts['name']}')").wait_for(
            state="detached"
        )
        await alice.page.goto(server.url + "/#/devices")
        await alice.page.wait_for_selector("#devices li")
        await alice.shot("devices")

        for tab in (alice, bob):
            assert tab.foreign_requests() == [], tab.foreign_requests()
            assert not [e for e in tab.errors if "favicon" not in e], tab.errors
        await carol.close()
    server.stop()
    stored = raw_bytes(Path(server.log_path).parent)
    for label, text in texts.items():
        assert text.encode() not in stored, f"{label} is in the server's files"


async def test_reload_second_device_key_sharing_and_removal(server: ServerProcess) -> None:
    early, late = secret("early"), secret("late")
    async with chromium() as browser:
        first = await open_tab(browser, server.url, "alice-first")
        await register(first, "alice")
        bob = await open_tab(browser, server.url, "bob")
        await register(bob, "bob")
        await bob.page.goto(server.url + "/#/new")
        await bob.page.fill("#members", "alice")
        await bob.page.click("form button[type=submit]")
        await bob.page.wait_for_selector("#compose")
        await send(bob, early)
        await first.page.wait_for_selector("#inbox a", timeout=20_000)
        await open_conversation(first, "bob")
        await wait_text(first, early)

        # a reload keeps the device: same keys, history decrypted again
        names = "indexedDB.databases().then(d => d.map(x => x.name))"
        before = await first.page.evaluate(names)
        await first.page.reload()
        await first.page.wait_for_selector("body[data-ready]")
        await first.page.wait_for_selector("#compose")
        await wait_text(first, early)
        assert sorted(before) == sorted(await first.page.evaluate(names))
        # a second tab of the same browser does not open the same device a second time
        other_tab = await first.context.new_page()
        await other_tab.goto(server.url + "/")
        await other_tab.wait_for_selector("text=already open in another tab", timeout=20_000)
        await other_tab.close()

        # a second browser device: the earlier message waits for its key ...
        second = await open_tab(browser, server.url, "alice-second")
        await sign_in(second, "alice")
        await first.page.wait_for_selector("text=A new device signed in to your account")
        await bob.page.wait_for_selector("text=alice has a new device")  # and her contact
        await first.shot("notice-new-device")
        await open_conversation(second, "bob")
        await second.page.wait_for_selector("#messages li[data-state=waiting]", timeout=20_000)
        await second.shot("conversation-waiting-for-key")
        # ... it asks the first device, where the person confirms, and then it reads it
        # the button (the waiting text names it too)
        await second.page.get_by_role("button", name="Ask again for the key").click()
        share = first.page.locator("#notices button", has_text="Share keys with")
        await share.wait_for(timeout=20_000)
        await first.shot("notice-key-request")
        await share.click()
        await wait_text(second, early)

        # removing the second device from the first: it is signed out and wiped
        await first.page.goto(server.url + "/#/devices")
        await first.page.wait_for_selector("#devices li >> nth=1")
        first.page.once("dialog", lambda d: d.accept())
        await first.page.click("#devices button.danger")
        await second.page.wait_for_selector("#username", timeout=30_000)
        await second.page.wait_for_selector("text=This device was signed out")
        await second.shot("signed-out")
        left = await second.page.evaluate(names)
        assert not [n for n in left if n.startswith("clearpost")], left
        await first.page.goto(server.url + "/#/devices")
        await first.page.wait_for_selector("#devices li")
        assert await first.page.locator("#devices li").count() == 1
        # and it gets nothing new: bob's next message reaches the first device only
        await send(bob, late)
        await open_conversation(first, "bob")
        await wait_text(first, late)
        assert await second.page.locator(f"text={late}").count() == 0

        for tab in (first, second, bob):
            assert tab.foreign_requests() == [], tab.foreign_requests()
    server.stop()
    stored = raw_bytes(Path(server.log_path).parent)
    assert early.encode() not in stored and late.encode() not in stored


@contextlib.asynccontextmanager
async def http_only_proxy(
    upstream: str, lose_first_send: Literal["answer", "request"] | None = None
) -> AsyncIterator[str]:
    """A reverse proxy that passes plain HTTP and refuses WebSocket upgrades (403), as a
    proxy not set up for WebSockets does. Runs in this event loop. With
    ``lose_first_send="answer"``, the first message send reaches the server but its answer
    is lost (502), as when a connection drops after the request went through; with
    ``"request"``, the first message send never reaches the server (502)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=upstream, timeout=90)
    lost: list[str] = []

    async def forward(request: Request) -> Response:
        sending = request.method == "PUT" and "/messages/" in request.url.path
        losing = lose_first_send is not None and sending and not lost
        if losing:
            lost.append(request.url.path)
            if lose_first_send == "request":
                return Response(b"", 502)
        headers = [(k, v) for k, v in request.headers.items() if k not in ("host", "connection")]
        r = await client.request(
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            headers=headers,
            content=await request.body(),
        )
        if losing:
            return Response(b"", 502)
        drop = ("content-encoding", "transfer-encoding", "content-length", "connection")
        return Response(
            r.content,
            r.status_code,
            headers={k: v for k, v in r.headers.items() if k.lower() not in drop},
        )

    methods = ["GET", "POST", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    port = free_port()
    proxy = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning", ws="none"))
    task = asyncio.create_task(proxy.serve())
    while not proxy.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proxy.should_exit = True
        await task
        await client.aclose()


async def test_without_a_websocket_the_app_long_polls(server: ServerProcess) -> None:
    """Behind a proxy that refuses WebSockets, the app says so and keeps up by long-polling."""
    text = secret("polled")
    async with http_only_proxy(server.url) as proxied, chromium() as browser:
        alice = await open_tab(browser, proxied, "alice")
        await register(alice, "alice")
        bob = await open_tab(browser, server.url, "bob")
        await register(bob, "bob")
        await alice.page.wait_for_selector("#connection:has-text('fetched by polling')")
        await alice.shot("long-poll-notice")
        await bob.page.goto(server.url + "/#/new")
        await bob.page.fill("#members", "alice")
        await bob.page.click("form button[type=submit]")
        await bob.page.wait_for_selector("#compose")
        await send(bob, text)
        await alice.page.wait_for_selector("#inbox a", timeout=30_000)
        await open_conversation(alice, "bob")
        await wait_text(alice, text, timeout=30_000)
        assert any("/v1/sync?since=" in u for u in alice.requests)


async def alice_writes_to_bob_behind(proxied: str, direct: str, browser: Any) -> tuple[Tab, Tab]:
    """Alice behind the proxy, Bob straight to the server, in a direct conversation that
    Alice opened and has on screen."""
    alice = await open_tab(browser, proxied, "alice")
    await register(alice, "alice")
    bob = await open_tab(browser, direct, "bob")
    await register(bob, "bob")
    await alice.page.goto(proxied + "/#/new")
    await alice.page.fill("#members", "bob")
    await alice.page.click("form button[type=submit]")
    await alice.page.wait_for_selector("#compose")
    return alice, bob


async def shown_once(tab: Tab, text: str) -> None:
    """``text`` is on screen once, as sent: no "sending" or "not sent" copy of it, and no
    notice saying it was not sent."""
    await wait_text(tab, text)
    unsent = "#messages li[data-state=unsent], #messages li[data-state=sending]"
    await tab.page.locator(unsent).wait_for(state="detached")
    await tab.page.locator("#notices [data-id^='unsent:']").wait_for(state="detached")
    assert await tab.page.locator(f"#messages .text:text-is('{text}')").count() == 1
    assert await tab.page.locator("#messages button", has_text="Retry").count() == 0


async def test_a_send_whose_answer_was_lost_shows_once_when_sync_brings_it(
    server: ServerProcess,
) -> None:
    """The first send's answer is lost after the server stored it. The message comes back
    to Alice's browser through sync as an ordinary message: it is shown once, as sent, not
    a second time as "not sent" (with a Retry nobody needs), and no notice says it was not
    sent."""
    text = secret("answer-lost")
    async with (
        http_only_proxy(server.url, lose_first_send="answer") as proxied,
        chromium() as browser,
    ):
        alice, bob = await alice_writes_to_bob_behind(proxied, server.url, browser)
        await send(alice, text)
        await open_conversation(bob, "alice")
        await wait_text(bob, text)  # it was stored, though Alice's send was not answered
        await shown_once(alice, text)
        await alice.shot("conversation-answer-lost")


async def test_a_send_that_was_lost_is_retried_under_the_same_transaction(
    server: ServerProcess,
) -> None:
    """The first send never reaches the server: the message shows "not sent" with Retry;
    Retry sends the same request (same transaction id, same ciphertext) and the server keeps
    one copy: Bob sees it once, and Alice's browser shows it once."""
    text = secret("retried")
    async with (
        http_only_proxy(server.url, lose_first_send="request") as proxied,
        chromium() as browser,
    ):
        alice, bob = await alice_writes_to_bob_behind(proxied, server.url, browser)
        await send(alice, text)
        await alice.page.wait_for_selector("#messages li[data-state=unsent]")
        await alice.shot("conversation-not-sent")
        await alice.page.click("#messages li[data-state=unsent] button:text('Retry')")
        await shown_once(alice, text)
        await open_conversation(bob, "alice")
        await wait_text(bob, text)
        await bob.page.reload()
        await bob.page.wait_for_selector("#compose")
        await wait_text(bob, text)
        assert await bob.page.locator(f"#messages .text:text-is('{text}')").count() == 1
