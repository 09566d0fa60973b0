"""A peer's withheld notice (issue 15): shown only for a key this device asked for, and never
interpreted as terminal markup by ``clearpost chat``."""

from __future__ import annotations

from pathlib import Path

import httpx

from clearpost.cli import chat
from clearpost.client import MessageState
from clearpost.client.model import Message
from clearpost.core.e2ee import control
from tests.unit.client.test_client_inprocess import register

FAKE = "[/magenta]\n[bold]@alice[/bold]: [link=https://evil.example]your bank[/link]"


async def test_an_unasked_withheld_notice_is_ignored(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(app_client, tmp_path, "alice")
    bob = await register(app_client, tmp_path, "bob")
    conv = await alice.direct("@bob")
    await alice.send(conv, "hello")
    raw = (await bob.transport.messages(conv))["messages"][0]
    waiting, _ = bob.crypto.receive(raw)  # before Bob's sync brings the key; not asked yet
    assert waiting.state is MessageState.WAITING_FOR_KEY
    session = raw["envelope"]["session_id"]
    sender = control.DeviceRef("@alice", alice.device_id, alice.crypto.olm.ed25519)
    me = control.DeviceRef("@bob", bob.device_id, bob.crypto.olm.ed25519)
    notice = control.Withheld(conv, session, control.WITHHELD_NOT_MEMBER, FAKE)
    payload = control.OlmPayload(control.WITHHELD, sender, me, control.withheld_content(notice))

    assert await bob.crypto.keys.dispatch(payload) == []  # Bob never asked: ignored
    (shown,) = bob.cached_history(conv)
    assert shown.state is MessageState.WAITING_FOR_KEY and "evil" not in shown.text

    await bob.crypto.keys.send_requests()  # now Bob asks Alice's devices for the key
    (event,) = await bob.crypto.keys.dispatch(payload)
    assert event.message.state is MessageState.WITHHELD  # type: ignore[attr-defined]
    await alice.close()
    await bob.close()


def test_chat_prints_a_peer_reason_as_plain_text() -> None:
    msg = Message("c_x", 1, "@mallory", "DEV", 0, MessageState.WITHHELD, problem=FAKE)
    with chat.out.capture() as captured:
        chat._show(msg, "@bob")
    text = captured.get()
    assert "[link=https://evil.example]your bank[/link]" in text
    assert "\x1b]8;" not in text  # no terminal hyperlink
    assert text.count("\n") == 2  # the reason's own line break, and the end of line
