"""A key withheld by the Python SDK, shown in the browser in plain words, with a way to ask
again: a real ``clearpost serve``, Debian's Chromium, the SDK, real crypto, and nothing
touching the devices' Olm traffic.

What the SDK withholds (``client/keyshare.py``): it answers a key request from a member
who was a member when the session was in use with the key (``m.forwarded_room_key``), and
a member who was not with ``m.room_key.withheld`` (``m.unauthorised``), both inside Olm.
How a browser comes to hold a message of a session it was never a member of: Alice wrote
while her phone had no signal; before her app sent it again (the same ciphertext under the
same transaction id, as it must so that the server stores it once), Carol added Bob to the
group. Bob's browser sees the message (it was stored after he joined) but not its key. It
asks Alice's device; her device answers with the withheld notice; the browser shows the
reason in plain words, and can ask again.

A second browser of Bob's, signed in later while the first is closed, asks too: its first
Olm message to Alice's device is a pre-key message. It shows the same reason for that
message. The key of Alice's later message, which her device forwards to it,
matrix-sdk-crypto takes only from Bob's own verified devices: it comes from Bob's first
browser once that is open again and Bob confirms there.

Screenshots go to ``test-artifacts/web/`` (``$CLEARPOST_SCREENSHOTS``).
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest
from playwright.async_api import expect

from clearpost.client import Client, ClientError
from tests.support.chromium import chromium
from tests.support.server import ServerProcess
from tests.web.browser import (
    Tab,
    open_conversation,
    open_tab,
    register,
    sdk_user,
    sign_in,
    wait_text,
)

pytestmark = pytest.mark.slow

UNAUTHORISED = "The sender's device decided this device may not read this message."
# what can still bring the key, in words that are true: Alice's own room key, late; Bob's
# other devices, once he confirms; Alice's device, asked, only its reason (the browser takes
# a forwarded key only from Bob's own devices)
WAITING = (
    "Waiting for the key to this message: it may still be on its way from alice's device. "
    "If it does not come, one of your other devices that has the key can send it once you "
    "confirm there (Ask again for the key); asking alice's device can bring back only its "
    "reason for not sending it."
)


def secret(label: str) -> str:
    return f"{label}-plaintext-{secrets.token_hex(6)}"


class NoSignal(httpx.AsyncBaseTransport):
    """Alice's phone's network: while ``down``, a message send cannot connect (nothing
    reaches the server); everything else goes through."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.method == "PUT" and "/messages/" in request.url.path:
            raise httpx.ConnectError("no signal", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def ask_again(tab: Tab, seq: int, alice: Client, devices: int, times: int = 1) -> None:
    """Press "Ask again for the key" on message ``seq`` (it waits while the button rests);
    the message says how many devices were asked, and when; Alice's device takes the
    request from its next sync and answers it."""
    item = tab.page.locator(f"#messages li[data-seq='{seq}']")
    await item.get_by_role("button", name="Ask again for the key").click()
    word = "device" if devices == 1 else "devices"
    so_far = re.escape(f" ({times} times so far)") if times > 1 else ""
    said = re.compile(rf"^Asked {devices} {word} for the key at [^()]+{so_far}\.$")
    await item.get_by_role("status").filter(has_text=said).wait_for()
    await alice.sync()


async def shows_withheld(tab: Tab, seq: int) -> None:
    """Message ``seq`` says why in plain words, with the button to ask again."""
    item = tab.page.locator(f"#messages li[data-seq='{seq}'][data-state=withheld]")
    await item.wait_for(timeout=30_000)
    assert await item.locator(".text").inner_text() == UNAUTHORISED
    assert await item.get_by_role("button", name="Ask again for the key").is_enabled()


async def test_a_key_withheld_by_the_sdk_is_shown_in_plain_words_and_asked_for_again(
    server: ServerProcess, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    m0, m1 = secret("written-offline"), secret("after-bob-joined")
    signal = NoSignal()
    async with (
        httpx.AsyncClient(base_url=server.url, transport=signal, timeout=30) as phone,
        chromium() as browser,
    ):
        first = await open_tab(browser, server.url, "bob-first")
        await register(first, "bob")
        alice = await sdk_user(phone, "alice", tmp_path)
        carol = await sdk_user(http, "carol", tmp_path)
        bob_id = f"@bob:{alice.server_name}"
        group = await alice.new_group([carol.user_id])

        # Alice writes with no signal: encrypted for Alice and Carol, never sent
        signal.down = True
        with pytest.raises(ClientError) as lost:
            await alice.send(group, m0, txn_id="written-offline")
        assert lost.value.code == "network_error"
        await carol.add_member(group, bob_id)
        signal.down = False
        sent = await alice.send(group, m0, txn_id="written-offline")  # the same request
        after = await alice.send(group, m1)  # a new session, Bob's browser gets its key
        assert after.session_id != sent.session_id

        await first.page.wait_for_selector("#inbox a", timeout=30_000)
        await open_conversation(first, "alice, carol")
        await wait_text(first, m1)
        waiting = first.page.locator(f"#messages li[data-seq='{sent.seq}'][data-state=waiting]")
        await waiting.wait_for()
        assert await waiting.locator(".text").inner_text() == WAITING
        await first.shot("key-waiting")

        await ask_again(first, sent.seq, alice, 1)
        await shows_withheld(first, sent.seq)
        await first.shot("key-withheld")
        # and again: asked once more, answered once more, the same reason
        await ask_again(first, sent.seq, alice, 1)
        item = first.page.locator(f"#messages li[data-seq='{sent.seq}'][data-state=withheld]")
        assert await item.locator(".text").inner_text() == UNAUTHORISED
        # the answer did not change the message: the button can be pressed again a little
        # later (it stayed "Asked 1 device(s)", disabled, until a reload), and the message
        # says that it was asked, and how often
        await expect(item.get_by_role("button", name="Ask again for the key")).to_be_enabled(
            timeout=30_000
        )
        await ask_again(first, sent.seq, alice, 1, times=2)
        assert await item.locator(".text").inner_text() == UNAUTHORISED
        await first.shot("key-withheld-asked-again")
        await first.page.close()  # the tab is closed: this device is offline

        # a second browser of Bob's, signed in later: neither message's key came to it
        second = await open_tab(browser, server.url, "bob-second")
        await sign_in(second, "bob")
        await open_conversation(second, "alice, carol")
        for seq in (sent.seq, after.seq):
            await second.page.locator(
                f"#messages li[data-seq='{seq}'][data-state=waiting]"
            ).wait_for(timeout=30_000)
        # it asks Alice's device (its first Olm message to it: a pre-key message) and Bob's
        # first device (offline: the request waits on the server for it)
        await ask_again(second, sent.seq, alice, 2)
        await shows_withheld(second, sent.seq)
        await second.shot("key-withheld-second-device")
        # Alice's device forwarded the other session's key (Bob was a member then), which
        # matrix-sdk-crypto takes only from the user's own verified devices: that message's
        # key comes when the first device is back and Bob confirms there
        first.page = await first.context.new_page()
        await first.page.goto(server.url + "/")
        share = first.page.locator("#notices button", has_text="Share keys with")
        await share.wait_for(timeout=30_000)
        await share.click()
        await wait_text(second, m1)
        await shows_withheld(second, sent.seq)  # the first device had no key for it either
        await second.shot("key-withheld-and-shared-second-device")

        for tab in (first, second):
            assert tab.foreign_requests() == [], tab.foreign_requests()
            assert not [e for e in tab.errors if "favicon" not in e], tab.errors
        await alice.close()
        await carol.close()
