"""Opening a long conversation in the browser: the newest messages at once, the earlier
ones added above them as the crypto worker decrypts them, newest first, while the page
stays usable. A real ``clearpost serve``, Debian's Chromium, the Python SDK, real crypto.

What the test holds back is the network: every request for earlier history waits (a
Playwright route on the browser profile, which sees the worker's requests too) until the
test lets it through, so "before the earlier messages arrived" is a state the test is
sure to see, not a race it may lose. Before this, opening the conversation waited for all
of its history: the page did not change at all while those requests were held.

Screenshots go to ``test-artifacts/web/`` (``$CLEARPOST_SCREENSHOTS``).
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.chromium import chromium
from tests.support.server import ServerProcess
from tests.web.browser import Tab, open_tab, register, sdk_user, send, wait_text

pytestmark = pytest.mark.slow

HISTORY = 260  # the inbox decrypts the last 50; the rest is two pages (100, then 200)


async def seqs(tab: Tab) -> list[int]:
    return [
        int(s)
        for s in await tab.page.locator("#messages li").evaluate_all(
            "items => items.map(li => li.dataset.seq)"
        )
    ]


async def in_view(tab: Tab, selector: str) -> bool:
    return bool(
        await tab.page.locator(selector).evaluate(
            "el => { const r = el.getBoundingClientRect();"
            " return r.top >= 0 && r.bottom <= window.innerHeight; }"
        )
    )


async def top_of(tab: Tab, selector: str) -> float:
    return float(await tab.page.locator(selector).evaluate("el => el.getBoundingClientRect().top"))


async def test_a_long_conversation_shows_the_newest_messages_first_and_the_rest_above(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    token = secrets.token_hex(4)
    texts = [f"history {i} {token}" for i in range(HISTORY)]
    async with chromium() as browser:
        alice = await open_tab(browser, server.url, "alice")
        await register(alice, "alice")
        carol = await sdk_user(http, "carol", tmp_path)
        conv = await carol.direct(f"@alice:{carol.server_name}")
        for text in texts:
            await carol.send(conv, text)

        # a reload: the browser keeps no decrypted message; the inbox decrypts the last 50
        await alice.page.reload()
        await alice.page.wait_for_selector("#inbox a:has(.name:text-is('carol'))")
        released = asyncio.Event()
        held: list[str] = []

        async def hold(route: Any) -> None:
            held.append(route.request.url)
            await released.wait()
            await route.continue_()

        await alice.context.route(
            lambda url: "/v1/conversations/" in url and "/messages?after=" in url, hold
        )
        await alice.page.click("#inbox a:has(.name:text-is('carol'))")

        # at once: the newest messages, a composer with the focus, and a word about the rest
        await wait_text(alice, texts[-1])
        status = alice.page.locator("#history-status")
        assert await status.inner_text() == "Decrypting earlier messages in this browser…"
        assert await alice.page.evaluate("document.activeElement.id") == "compose"
        # the newest ones, in order, not the whole history: the inbox decrypted the last 50
        # (more if its sync caught more before the reload, as seen once on a loaded machine)
        first = (await seqs(alice))[0]
        assert await seqs(alice) == list(range(first, HISTORY + 1))
        assert 1 < first <= HISTORY - 49
        assert await in_view(alice, "#messages li:last-child")
        assert held, "the earlier history was asked for"
        await alice.shot("conversation-history-loading")

        # the page works meanwhile: Alice sends, Carol's new message comes in and is read out
        # (the list is not a live region: a polite one beside it says what is new)
        mine, hers = f"sent while loading {token}", f"new while loading {token}"
        await send(alice, mine)
        await wait_text(alice, mine)
        await carol.send(conv, hers)
        await wait_text(alice, hers)
        live = alice.page.locator("#messages-live")
        await live.locator("p", has_text=hers).wait_for(state="attached")
        assert await live.inner_text() == f"carol: {hers}"
        assert await alice.page.locator("#messages").get_attribute("aria-live") is None
        assert await in_view(alice, "#messages li:last-child")

        # Alice scrolls up a little to read; what she reads stays where it is while the
        # earlier messages come, newest first, above it; nothing is shown twice
        await alice.page.evaluate("() => window.scrollBy(0, -300)")
        reading = f"#messages li[data-seq='{HISTORY - 10}']"
        assert await in_view(alice, reading)
        top = await top_of(alice, reading)
        released.set()
        await wait_text(alice, texts[0], timeout=60_000)
        await status.wait_for(state="hidden")
        assert await seqs(alice) == list(range(1, HISTORY + 3))
        shown = await alice.page.locator("#messages li .text").all_inner_texts()
        assert shown == [*texts, mine, hers]
        # none of it was read out, the focus stayed in the composer, the page did not move
        assert await live.inner_text() == f"carol: {hers}"
        assert await alice.page.evaluate("document.activeElement.id") == "compose"
        assert abs(await top_of(alice, reading) - top) < 2
        await alice.shot("conversation-history-loaded")

        assert alice.foreign_requests() == [], alice.foreign_requests()
        assert not [e for e in alice.errors if "favicon" not in e], alice.errors
        await carol.close()
