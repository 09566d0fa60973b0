"""Withheld notices and refused room keys: shown where they belong, never silently kept.

Issue 15: a peer's withheld notice is shown only for a key this device asked for (or,
unasked, from the session's own device), and never interpreted as terminal markup by
``clearpost chat``. Issue 16: a room key with a field missing is refused with a visible,
recorded error instead of leaving its messages "waiting for the key" without a word."""

from __future__ import annotations

from pathlib import Path

import httpx
import vodozemac

from clearpost.cli import chat
from clearpost.client import Client, KeyProblem, MessageEvent, MessageState, formats
from clearpost.client.formats import OlmPayload, RoomKey, Withheld
from clearpost.client.model import Message
from tests.unit.client.test_client_inprocess import register

FAKE = "[/magenta]\n[bold]@alice[/bold]: [link=https://evil.example]your bank[/link]"


def payload(sender: Client, recipient: Client, kind: str, content: dict[str, object]) -> OlmPayload:
    return OlmPayload(
        kind,
        content,
        sender.user_id,
        sender.device_id,
        sender.crypto.olm.ed25519,
        recipient.user_id,
        recipient.crypto.olm.ed25519,
    )


async def test_an_unasked_withheld_notice_is_ignored(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(app_client, tmp_path, "alice")
    bob = await register(app_client, tmp_path, "bob")
    mallory = await register(app_client, tmp_path, "mallory")
    conv = await alice.direct("@bob")
    await alice.send(conv, "hello")
    raw = (await bob.transport.messages(conv))["messages"][0]
    waiting, _ = bob.crypto.receive(raw)  # before Bob's sync brings the key; not asked yet
    assert waiting.state is MessageState.WAITING_FOR_KEY
    session = raw["content"]["session_id"]
    room = bob.crypto.room_id(conv)
    for who in (alice, mallory):  # as Olm decryption would have, before dispatching
        await bob.crypto.devices.refresh(who.user_id)
    # from a device that is not the session's: Mallory's key, or Alice's claiming another key
    for who, key in ((mallory, mallory.crypto.olm.curve25519), (alice, "someone else's")):
        notice = Withheld(room, session, key, formats.UNAUTHORISED, FAKE)
        sent = payload(who, bob, formats.WITHHELD, notice.content())
        assert await bob.crypto.keys.dispatch(sent) == []  # Bob never asked: ignored
    (shown,) = bob.cached_history(conv)
    assert shown.state is MessageState.WAITING_FOR_KEY and "evil" not in shown.text

    await bob.crypto.keys.send_requests()  # now Bob asks Alice's devices for the key
    notice = Withheld(room, session, "any", formats.UNAUTHORISED, FAKE)
    (event,) = await bob.crypto.keys.dispatch(
        payload(alice, bob, formats.WITHHELD, notice.content())
    )
    assert isinstance(event, MessageEvent) and event.message.state is MessageState.WITHHELD
    assert event.message.code == "m.unauthorised"
    for c in (alice, bob, mallory):
        await c.close()


async def test_the_sessions_own_device_may_withhold_unasked(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """matrix-sdk-crypto withholds at share time (``m.unverified``): the notice comes before
    the messages, and they show it when they arrive."""
    alice = await register(app_client, tmp_path, "alice")
    bob = await register(app_client, tmp_path, "bob")
    conv = await alice.direct("@bob")
    group = vodozemac.GroupSession()  # Alice's session, whose key she withholds from Bob
    session = group.session_id
    notice = Withheld(
        bob.crypto.room_id(conv),
        session,
        alice.crypto.olm.curve25519,
        formats.UNVERIFIED,
        "you are not verified",
    )
    await bob.crypto.devices.refresh(alice.user_id)  # as Olm decryption would have
    sent = payload(alice, bob, formats.WITHHELD, notice.content())
    assert await bob.crypto.keys.dispatch(sent) == []
    raw = {
        "conversation_id": conv,
        "seq": 1,
        "sender": alice.user_id,
        "sender_device": alice.device_id,
        "origin_server_ts": 1,
        "content": formats.megolm_content(group.encrypt(b"secret").to_base64(), session),
    }
    msg, _ = bob.crypto.receive(raw)
    assert msg.state is MessageState.WITHHELD and msg.code == "m.unverified"
    assert msg.text == f"({alice.user_id} withheld the key: you are not verified)"
    await alice.close()
    await bob.close()


async def test_a_room_key_with_a_field_missing_is_refused_visibly(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(app_client, tmp_path, "alice")
    bob = await register(app_client, tmp_path, "bob")
    conv = await alice.direct("@bob")
    await alice.send(conv, "hello")  # shares a good key; Bob has not synced yet
    raw = (await bob.transport.messages(conv))["messages"][0]
    session = raw["content"]["session_id"]
    waiting, _ = bob.crypto.receive(raw)
    assert waiting.state is MessageState.WAITING_FOR_KEY

    # Alice's device sends, over Olm, a room key for that session without its room_id
    bob_device = alice.crypto.devices.device(bob.user_id, bob.device_id)
    assert bob_device is not None
    outbound = alice.crypto.groups.outbound(conv)
    assert outbound is not None
    good = RoomKey(alice.crypto.room_id(conv), session, outbound.session.session_key.to_base64())
    broken = {k: v for k, v in good.content().items() if k != "room_id"}
    await alice.crypto.olm.send([(bob_device, formats.ROOM_KEY, broken)])

    # the good key was sent before; take it out of Bob's queue to see the broken one alone
    events = await bob.crypto.receive_to_device(
        [e for e in (await bob.transport.sync(bob.store.cursor))["to_device"]["events"]][-1:]
    )
    problems = [e for e in events if isinstance(e, KeyProblem)]
    assert len(problems) == 1
    (problem,) = problems
    assert problem.code == "invalid_event" and problem.session_id == session
    assert problem.reason == (
        f"m.room_key from {alice.user_id}'s device {alice.device_id} was refused: "
        "an m.room_key: field 'room_id' is missing"
    )
    (updated,) = [e.message for e in events if isinstance(e, MessageEvent)]
    assert updated.state is MessageState.WAITING_FOR_KEY and updated.code == "room_key_refused"
    assert "field 'room_id' is missing" in updated.text
    assert bob.crypto.groups.inbound(session) is None  # never kept
    bob.crypto.commit()
    assert bob.key_problems() == [problem]  # recorded in the store
    (shown,) = bob.cached_history(conv)
    assert shown.code == "room_key_refused"
    await alice.close()
    await bob.close()


def test_chat_prints_a_peer_reason_as_plain_text() -> None:
    msg = Message("c_x", 1, "@mallory:s", "DEV", 0, MessageState.WITHHELD, problem=FAKE)
    with chat.out.capture() as captured:
        chat._show(msg, "@bob:s")
    text = captured.get()
    assert "[link=https://evil.example]your bank[/link]" in text
    assert "\x1b]8;" not in text  # no terminal hyperlink
    assert text.count("\n") == 2  # the reason's own line break, and the end of line
