"""Clearpost's formats against the Rust crypto stack: matrix-sdk-crypto's ``OlmMachine``
(npm ``@matrix-org/matrix-sdk-crypto-wasm``, pinned in package-lock.json, run in Node by
``driver.mjs``) talks to a real ``clearpost serve`` next to Python SDK devices.

Every plaintext is compared on every device that should read it; the server's database and
log must hold none of them, and its log no 5xx (``conftest.server``). Node and the package
are installed by ``.ci/run``; without them these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

from typing import Any

import pytest

from clearpost.client import Client, MessageEvent, MessageState, ShareCard
from tests.e2e.conftest import People, assert_no_plaintext, secret_text
from tests.interop.matrix.conftest import RustFactory
from tests.interop.matrix.rust import RustDevice, bodies
from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(300)  # each device is a Node process with a WebAssembly start


def texts(events: list[object]) -> list[str]:
    return [e.message.text for e in events if isinstance(e, MessageEvent)]


async def history_texts(client: Client, conversation_id: str) -> list[str]:
    return [m.text for m in await client.history(conversation_id)]


async def raw_message(client: Client, conversation_id: str, seq: int) -> dict[str, Any]:
    """One message object exactly as the server hands it out (through a member's token)."""
    page = await client.transport.messages(conversation_id, after=seq - 1)
    message: dict[str, Any] = page["messages"][0]
    assert message["seq"] == seq
    return message


def assert_from(msg: dict[str, Any], sender: Client | RustDevice, curve25519: str = "") -> None:
    """A message matrix-sdk-crypto decrypted came from ``sender``'s device, as an
    ``m.room.message`` in the conversation's room. For a forwarded session matrix-sdk-crypto
    knows only the origin's Curve25519 key: pass the sender device's."""
    assert msg["ok"], msg
    assert msg["type"] == "m.room.message" and msg["content"]["msgtype"] == "m.text"
    assert msg["clear_room_id"] == msg["room_id"]
    assert msg["decrypted_sender"] == msg["sender"] == sender.user_id
    assert msg["sender_device"] == sender.device_id
    if curve25519:
        assert msg["sender_curve25519"] == curve25519
    else:
        assert msg["decrypted_sender_device"] == sender.device_id


async def test_one_to_one_both_ways(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    alice = await people.register("alice")
    rita = await rust("rita")
    assert rita.user_id.startswith("@rita:")
    hello, reply, again = secret_text("hello"), secret_text("reply"), secret_text("again")

    conv = await alice.direct(rita.user_id)
    await alice.send(conv, hello)
    got = await rita.messages()
    assert bodies(got) == [hello]
    assert_from(got[0], alice)

    sent = await rita.send(conv, reply)
    assert sent["seq"] == 2
    events = await alice.sync()
    assert texts(events) == [reply]
    assert all(
        (e.message.sender, e.message.sender_device) == (rita.user_id, rita.device_id)
        for e in events
        if isinstance(e, MessageEvent)
    )

    await alice.send(conv, again)  # the same session both ways from here on
    assert bodies(await rita.messages()) == [again]

    # Share cards: a plain m.text with the card in its own field, both ways.
    title, url = secret_text("title"), "https://streamco.example/s/abc"
    await alice.send(conv, ShareCard(title, url, None, "StreamCo"))
    (card,) = await rita.messages()
    assert card["content"]["body"] == f"{title} {url} (via StreamCo)"
    assert card["content"]["org.clearpost.share"] == {
        "title": title,
        "url": url,
        "preview": None,
        "via": "StreamCo",
    }
    rust_title = secret_text("rust-title")
    rust_card = {"title": rust_title, "url": url, "preview": "p", "via": None}
    await rita.send(
        conv, {"msgtype": "m.text", "body": rust_title, "org.clearpost.share": rust_card}
    )
    (shared,) = [e.message for e in await alice.sync() if isinstance(e, MessageEvent)]
    assert shared.content == ShareCard(rust_title, url, "p", None)

    shown = [f"[{title}] {url} (via StreamCo)", f"[{rust_title}] {url}"]
    assert await history_texts(alice, conv) == [hello, reply, again, *shown]
    assert bodies(await rita.history(conv)) == [
        hello,
        reply,
        again,
        f"{title} {url} (via StreamCo)",
        rust_title,
    ]
    await assert_no_plaintext(server, db_url, [hello, reply, again, title, rust_title])
    for text in (hello, reply, again, title, rust_title):
        assert text not in rita.log()


async def test_group_of_three_both_ways(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    alice, bob = await people.register("alice"), await people.register("bob")
    rita = await rust("rita")
    a1, r1, b1, a2 = (secret_text(n) for n in ("a1", "r1", "b1", "a2"))

    group = await alice.new_group([bob.user_id, rita.user_id])
    await alice.send(group, a1)
    got = await rita.messages()
    assert bodies(got) == [a1]
    assert_from(got[0], alice)
    await rita.send(group, r1)
    assert texts(await bob.sync()) == [a1, r1]
    await bob.send(group, b1)
    got = await rita.messages()
    assert bodies(got) == [b1]
    assert_from(got[0], bob)
    assert texts(await alice.sync()) == [r1, b1]
    await alice.send(group, a2)
    assert bodies(await rita.messages()) == [a2]
    assert texts(await bob.sync()) == [a2]  # his own b1 is not news to Bob

    everything = [a1, r1, b1, a2]
    assert await history_texts(alice, group) == everything
    assert await history_texts(bob, group) == everything
    assert bodies(await rita.history(group)) == everything
    await assert_no_plaintext(server, db_url, everything)


async def test_a_late_rust_device_gets_earlier_keys_from_its_users_python_device(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    """matrix-sdk-crypto asks only its own user's devices, and takes a forwarded key only
    from one it has verified: Rita's new Rust laptop asks her Python phone."""
    alice = await people.register("alice")
    phone = await people.register("rita")
    m1, m2 = secret_text("m1"), secret_text("m2")
    group = await alice.new_group([phone.user_id])
    await alice.send(group, m1)
    await alice.send(group, m2)
    assert texts(await phone.sync()) == [m1, m2]

    laptop = await rust("rita", register=False, device="laptop")
    before = await laptop.history(group)
    assert [m["code"] for m in before] == ["MissingRoomKey", "MissingRoomKey"]
    # Rita compares her phone's keys on the laptop (as after an emoji verification): only a
    # verified own device may answer a key request.
    assert (await laptop.set_trust(phone.user_id, phone.device_id, "verified"))["verified"]
    assert [m["code"] for m in await laptop.history(group)] == ["MissingRoomKey"] * 2
    await phone.sync()  # the phone answers the (Olm-wrapped) m.room_key_request
    got = await laptop.sync()
    forwarded = [e for e in got["to_device"] if e["type"] == "m.forwarded_room_key"]
    assert forwarded, got["to_device"]
    assert forwarded[0]["sender"] == phone.user_id
    assert forwarded[0]["sender_device"] == phone.device_id
    after = await laptop.history(group)
    assert bodies(after) == [m1, m2]
    (alices,) = await laptop.call("devices", user_id=alice.user_id)
    for msg in after:
        assert_from(msg, alice, curve25519=alices["curve25519"])
    await assert_no_plaintext(server, db_url, [m1, m2])


async def test_a_late_python_device_gets_earlier_keys_from_its_users_rust_device(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    """The other way: Rita's Rust laptop wrote in a group; her phone is gone; her new Python
    tablet asks her devices, and the laptop (which verified the tablet) forwards the key."""
    alice = await people.register("alice")
    phone = await people.register("rita")
    laptop = await rust("rita", register=False, device="laptop")
    r1 = secret_text("r1")
    group = await alice.new_group([phone.user_id])
    await laptop.send(group, r1)
    assert texts(await alice.sync()) == [r1]
    await phone.logout()

    tablet = await people.new_device("rita", "tablet")
    # The laptop must know the tablet before the request comes: matrix-sdk-crypto drops a
    # key request from a device it has not queried yet.
    await laptop.sync()
    assert (await laptop.set_trust(tablet.user_id, tablet.device_id, "verified"))["verified"]
    waiting = await tablet.history(group)  # asks the sender's devices: only the laptop is left
    assert [m.state for m in waiting] == [MessageState.WAITING_FOR_KEY]
    await tablet.sync()
    await laptop.sync()  # matrix-sdk-crypto answers with m.forwarded_room_key
    updated = [e for e in await tablet.sync() if isinstance(e, MessageEvent) and e.updated]
    assert [e.message.text for e in updated] == [r1]
    assert await history_texts(tablet, group) == [r1]
    await assert_no_plaintext(server, db_url, [r1])


async def test_a_key_withheld_by_rust_is_shown_with_its_reason_in_python(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    """Rita shares only with devices she verified: matrix-sdk-crypto gives Alice's the key
    and sends Bob's m.room_key.withheld (m.unverified); the driver wraps the notice in Olm
    (the server takes no plaintext), and Bob's SDK shows the code and the reason."""
    alice, bob = await people.register("alice"), await people.register("bob")
    rita = await rust("rita")
    secret = secret_text("not-for-bob")
    group = await alice.new_group([bob.user_id, rita.user_id])
    await rita.set_trust(alice.user_id, alice.device_id, "verified")
    await rita.send(group, secret, strategy="trusted")
    assert (await rita.state())["dropped"] == []  # the notice went out, inside Olm

    assert texts(await alice.sync()) == [secret]
    shown = [e.message for e in await bob.sync() if isinstance(e, MessageEvent)]
    shown += [e.message for e in await bob.sync() if isinstance(e, MessageEvent) and e.updated]
    assert shown[-1].state is MessageState.WITHHELD, shown
    assert shown[-1].code == "m.unverified"
    assert "The sender has disabled encrypting to unverified devices." in shown[-1].text
    await assert_no_plaintext(server, db_url, [secret])


async def test_a_key_withheld_by_python_is_shown_with_its_reason_in_rust(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    """Rita lost the phone that held Alice's key; her Rust laptop asks her remaining Python
    tablet, which does not hold it and answers m.room_key.withheld (m.unavailable)."""
    alice = await people.register("alice")
    phone = await people.register("rita")
    m1 = secret_text("m1")
    group = await alice.new_group([phone.user_id])
    await alice.send(group, m1)
    await phone.logout()
    tablet = await people.new_device("rita", "tablet")
    assert [m.state for m in await tablet.history(group)] == [MessageState.WAITING_FOR_KEY]
    laptop = await rust("rita", register=False, device="laptop")
    await laptop.set_trust(tablet.user_id, tablet.device_id, "verified")
    assert [m["code"] for m in await laptop.history(group)] == ["MissingRoomKey"]
    await tablet.sync()  # answers the laptop's request: it does not have the key
    got = await laptop.sync()
    assert [e["type"] for e in got["to_device"]] == ["m.room_key.withheld"], got["to_device"]
    (shown,) = await laptop.history(group)
    assert not shown["ok"]
    assert shown["withheld_code"] == "m.unavailable"
    assert shown["withheld_reason"] == "The requested key was not found."
    await assert_no_plaintext(server, db_url, [m1])


async def test_removing_a_device_rotates_the_session_both_ways(
    server: ServerProcess, db_url: str, people: People, rust: RustFactory
) -> None:
    alice, bob = await people.register("alice"), await people.register("bob")
    bob_laptop = await people.new_device("bob", "laptop")
    rita = await rust("rita")
    group = await alice.new_group([bob.user_id, rita.user_id])
    r1, r2, a1, a2 = (secret_text(n) for n in ("r1", "r2", "a1", "a2"))

    # matrix-sdk-crypto rotates when a device it shared with is removed.
    first = await rita.send(group, r1)
    assert texts(await bob_laptop.sync()) == [r1]
    await bob.transport.delete_device(bob_laptop.device_id)
    await rita.sync()  # device_lists.changed: Bob -> a key query without the laptop
    second = await rita.send(group, r2)
    assert second["session_id"] != first["session_id"]
    assert texts(await bob.sync()) == [r1, r2]
    assert texts(await alice.sync()) == [r1, r2]
    cut_off = await bob_laptop.decrypt(await raw_message(alice, group, second["seq"]))
    assert cut_off.state is MessageState.WAITING_FOR_KEY

    # The SDK rotates when the Rust device is removed; the Rust device cannot read on.
    before = await alice.send(group, a1)
    assert bodies(await rita.messages()) == [a1]
    await rita.logout()
    await alice.sync()
    after = await alice.send(group, a2)
    assert after.session_id != before.session_id
    assert texts(await bob.sync()) == [a1, a2]
    shut_out = await rita.call("decrypt_event", event=await raw_message(alice, group, after.seq))
    assert not shut_out["ok"] and shut_out["code"] == "MissingRoomKey"
    await assert_no_plaintext(server, db_url, [r1, r2, a1, a2])


async def test_two_rust_devices_talk_through_clearpost(
    server: ServerProcess, db_url: str, rust: RustFactory
) -> None:
    """No Python SDK in the loop: the server alone carries matrix-sdk-crypto's keys,
    to-device room keys and Megolm events between two of its devices."""
    rita, ruth = await rust("rita"), await rust("ruth")
    hello, reply = secret_text("hello"), secret_text("reply")
    conv = await rita.create_conversation("direct", [ruth.user_id])
    await rita.send(conv, hello)
    got = await ruth.messages()
    assert bodies(got) == [hello]
    assert_from(got[0], rita)
    await ruth.send(conv, reply)
    got = await rita.messages()
    assert bodies(got) == [reply]
    assert_from(got[0], ruth)
    assert bodies(await rita.history(conv)) == bodies(await ruth.history(conv)) == [hello, reply]
    await assert_no_plaintext(server, db_url, [hello, reply])


async def test_rust_devices_withhold_and_forward_through_clearpost(
    server: ServerProcess, db_url: str, rust: RustFactory
) -> None:
    """The two paths matrix-sdk-crypto sends in the clear, wrapped in Olm by the driver,
    between matrix-sdk-crypto devices alone: m.room_key.withheld (m.unverified) shown with its
    reason, and m.room_key_request answered by m.forwarded_room_key for a late own device."""
    rita, ruth = await rust("rita"), await rust("ruth")
    first, second = secret_text("first"), secret_text("second")
    group = await rita.create_conversation("group", [ruth.user_id])
    await rita.send(group, first, strategy="trusted")  # Ruth's device is not verified
    got = await ruth.sync()
    (notice,) = [e for e in got["to_device"] if e["type"] == "m.room_key.withheld"]
    assert notice["kind"] == "Decrypted" and notice["content"]["code"] == "m.unverified"
    (shown,) = got["messages"]
    assert not shown["ok"] and shown["withheld_code"] == "m.unverified"
    assert shown["withheld_reason"] == "The sender has disabled encrypting to unverified devices."

    await rita.set_trust(ruth.user_id, ruth.device_id, "verified")
    await rita.send(group, second, strategy="trusted")
    assert bodies(await ruth.messages()) == [second]

    laptop = await rust("rita", register=False, device="laptop")
    await rita.sync()  # knows the laptop before its request comes
    await rita.set_trust(laptop.user_id, laptop.device_id, "verified")
    await laptop.set_trust(rita.user_id, rita.device_id, "verified")
    assert [m["code"] for m in await laptop.history(group)] == ["MissingRoomKey"] * 2
    asked = await rita.sync()
    requests = {e["content"]["body"]["session_id"] for e in asked["to_device"]}
    assert [e["type"] for e in asked["to_device"]] == ["m.room_key_request"] * len(requests)
    got = await laptop.sync()
    forwarded = [e for e in got["to_device"] if e["type"] == "m.forwarded_room_key"]
    assert {e["content"]["session_id"] for e in forwarded} == requests
    assert all(e["content"]["forwarding_curve25519_key_chain"] == [] for e in forwarded)
    assert bodies(await laptop.history(group)) == [first, second]
    assert (await rita.state())["dropped"] == (await laptop.state())["dropped"] == []
    await assert_no_plaintext(server, db_url, [first, second])
