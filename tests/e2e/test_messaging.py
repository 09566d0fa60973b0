"""End to end through the SDK against a real server process, on SQLite and PostgreSQL.

Every test ends by reading the server's raw database and log: the plaintexts sent must
appear nowhere (nor unsealed in the device stores)."""

from __future__ import annotations

import asyncio
import contextlib

from clearpost.client import (
    Client,
    DeviceListChange,
    KeyProblem,
    MessageEvent,
    MessageState,
    Text,
    formats,
)
from tests.e2e.conftest import People, assert_no_plaintext, secret_text
from tests.support.server import ServerProcess


def texts(events: list[object]) -> list[str]:
    return [e.message.text for e in events if isinstance(e, MessageEvent)]


async def next_message(client: Client, stream: bool) -> MessageEvent:
    events = client.listen(stream=stream)
    async with contextlib.aclosing(events):
        async for event in events:
            if isinstance(event, MessageEvent):
                return event
    raise AssertionError("listen() ended")


async def test_alice_and_bob_both_ways(server: ServerProcess, db_url: str, people: People) -> None:
    alice = await people.register("alice")
    bob = await people.register("bob")
    hello, reply, live = secret_text("hello"), secret_text("reply"), secret_text("live")

    conv = await alice.direct("@bob")
    sent = await alice.send(conv, hello)
    assert sent.seq == 1
    assert texts(await bob.sync()) == [hello]

    await bob.send(conv, reply)
    got = await alice.sync()
    assert texts(got) == [reply]
    assert bob.user_id == "@bob:clearpost.localhost"  # the default server name
    assert all(e.message.sender == bob.user_id for e in got if isinstance(e, MessageEvent))

    # live delivery: Alice listens on the WebSocket stream while Bob sends
    listening = asyncio.create_task(next_message(alice, stream=True))
    await asyncio.sleep(0.3)
    await bob.send(conv, Text(live))
    event = await asyncio.wait_for(listening, 10)
    assert event.message.text == live and event.message.state is MessageState.DECRYPTED

    assert [m.text for m in await bob.history(conv)] == [hello, reply, live]
    assert [m.text for m in await alice.history(conv)] == [hello, reply, live]
    await assert_no_plaintext(
        server,
        db_url,
        [hello, reply, live],
        stores=[people.store_path("alice"), people.store_path("bob")],
    )


async def test_group_and_a_second_device(
    server: ServerProcess, db_url: str, people: People
) -> None:
    alice, bob, carol = [await people.register(n) for n in ("alice", "bob", "carol")]
    m_alice, m_bob, m_carol = secret_text("a1"), secret_text("b1"), secret_text("c1")
    group = await alice.new_group(["@bob", "@carol"])
    await alice.send(group, m_alice)
    await bob.send(group, m_bob)
    await carol.send(group, m_carol)
    for who in (alice, bob, carol):
        await who.sync()
        assert [m.text for m in await who.history(group)] == [m_alice, m_bob, m_carol]

    # Bob adds a second device; the others learn about it, Bob's first device too.
    bob2 = await people.new_device("bob", "laptop")
    own_change = [e for e in await bob.sync() if isinstance(e, DeviceListChange)]
    assert own_change and own_change[0].own and own_change[0].added == (bob2.device_id,)
    alice_change = [e for e in await alice.sync() if isinstance(e, DeviceListChange)]
    assert (
        alice_change
        and alice_change[0].user_id == bob.user_id
        and bob2.device_id in alice_change[0].added
    )

    after = secret_text("after")
    await alice.send(group, after)  # Alice shares her session with bob2 before this message
    assert texts(await bob2.sync()) == [after]
    assert texts(await bob.sync()) == [after]
    from_bob2 = secret_text("from-laptop")
    await bob2.send(group, from_bob2)  # bob2 shares with every device, Bob's phone included
    assert texts(await bob.sync()) == [from_bob2]
    assert texts(await carol.sync()) == [after, from_bob2]

    # Key requests: bob2 missed the first three messages. It shows them as waiting and asks
    # the senders' devices; once they answer, the messages decrypt.
    earlier = await bob2.history(group)
    waiting = [m for m in earlier if m.state is MessageState.WAITING_FOR_KEY]
    assert [m.seq for m in waiting] == [1, 2, 3]
    assert waiting[0].text == (
        f"(waiting for the key from {alice.user_id}'s device {alice.device_id})"
    )
    for who in (alice, bob, carol):
        await who.sync()  # each answers the request for its own message
    updated = [e for e in await bob2.sync() if isinstance(e, MessageEvent) and e.updated]
    assert sorted(e.message.seq for e in updated) == [1, 2, 3]
    assert [m.text for m in await bob2.history(group)] == [
        m_alice,
        m_bob,
        m_carol,
        after,
        from_bob2,
    ]

    # Bob logs the laptop out: everyone hears, and Alice's next message uses a new session
    # that the laptop never receives.
    before_logout = (await alice.send(group, secret_text("still-shared"))).session_id
    await bob2.logout()
    removed = [e for e in await alice.sync() if isinstance(e, DeviceListChange)]
    assert removed and removed[0].removed == (bob2.device_id,)
    gone = secret_text("after-logout")
    assert (await alice.send(group, gone)).session_id != before_logout
    assert texts(await bob.sync())[-1] == gone

    plain = [m_alice, m_bob, m_carol, after, from_bob2, gone]
    await assert_no_plaintext(server, db_url, plain, stores=[people.store_path("bob-laptop")])


async def test_removed_and_late_members(server: ServerProcess, db_url: str, people: People) -> None:
    alice, bob, carol, dave = [await people.register(n) for n in ("alice", "bob", "carol", "dave")]
    before, after, welcome = secret_text("before"), secret_text("after"), secret_text("welcome")
    group = await alice.new_group(["@bob", "@carol"])
    first = await alice.send(group, before)
    await carol.sync()

    # Carol is removed; Alice's next message uses a new session that Carol never gets.
    await alice.remove_member(group, "@carol")
    second = await alice.send(group, after)
    assert second.session_id != first.session_id
    assert texts(await bob.sync()) == [before, after]
    assert texts(await carol.sync()) == []  # the server no longer sends her anything
    raw_after = (await alice.transport.messages(group, after=1))["messages"][0]
    shown = await carol.decrypt(raw_after)  # even with the ciphertext in hand
    assert shown.state is MessageState.WAITING_FOR_KEY
    await alice.sync()  # Alice's device answers Carol's key request: withheld
    events = [e for e in await carol.sync() if isinstance(e, MessageEvent)]
    assert events and events[0].message.state is MessageState.WITHHELD
    assert events[0].message.code == "m.unauthorised"
    assert "you are not a member of this conversation" in events[0].message.text

    # Dave joins later: he sees neither the earlier messages nor their keys.
    await alice.add_member(group, "@dave")
    assert [m.seq for m in await dave.history(group)] == []
    raw_before = (await alice.transport.messages(group))["messages"][0]
    assert (await dave.decrypt(raw_before)).state is MessageState.WAITING_FOR_KEY
    await alice.sync()
    events = [e for e in await dave.sync() if isinstance(e, MessageEvent)]
    assert (
        events[0].message.state is MessageState.WITHHELD
        and events[0].message.code == "m.unauthorised"
    )
    assert (
        "were not a member of this conversation when this message was sent"
        in events[0].message.text
    )
    await alice.send(group, welcome)
    assert texts(await dave.sync()) == [welcome]

    # Bob (who holds Alice's first session) forwards it to Dave behind Alice's back, through
    # the SDK's internals: Dave refuses a key of Alice's that does not come from Alice.
    first_session = raw_before["content"]["session_id"]
    inbound = bob.crypto.groups.inbound(first_session)
    assert inbound is not None
    by_user = await bob.crypto.devices.devices_for([dave.user_id])
    dave_device = by_user[dave.user_id][dave.device_id]
    forwarded = bob.crypto.keys._export(inbound)
    await bob.crypto.olm.send([(dave_device, formats.FORWARDED_ROOM_KEY, forwarded)])
    events = await dave.sync()
    assert [e for e in events if isinstance(e, MessageEvent)] == []
    (refused,) = [e for e in events if isinstance(e, KeyProblem)]
    assert refused.event_type == "m.forwarded_room_key" and refused.code == "untrusted_sender"
    assert refused.sender == bob.user_id and "none of its devices" in refused.reason
    assert dave.crypto.groups.inbound(first_session) is None
    assert dave.key_problems() == [refused]

    # Sharing on purpose: Alice deliberately gives Dave the keys of her earlier sessions.
    # Only then can he read the message sent before he joined.
    assert await alice.share_history(group, "@dave") >= 1
    events = [e for e in await dave.sync() if isinstance(e, MessageEvent)]
    assert [e.message.text for e in events] == [before]
    # Carol is still locked out of everything after her removal.
    assert (await carol.decrypt(raw_after)).state is MessageState.WITHHELD
    await assert_no_plaintext(server, db_url, [before, after, welcome])


async def test_replayed_tampered_and_misattributed_messages(
    server: ServerProcess,
    db_url: str,
    people: People,
) -> None:
    alice, bob = await people.register("alice"), await people.register("bob")
    original = secret_text("original")
    conv = await alice.direct("@bob")
    await alice.send(conv, original)
    envelope = (await alice.transport.messages(conv))["messages"][0]["content"]

    # The exact same ciphertext again, as a new message (a replay the server cannot spot).
    await alice.transport.send_message(conv, "replay-1", envelope)
    # A flipped bit in the ciphertext (still a well-formed Megolm message).
    raw = bytearray(envelope["ciphertext"].encode())
    middle = len(raw) // 2
    raw[middle] = ord("A") if raw[middle] != ord("A") else ord("B")
    await alice.transport.send_message(conv, "tamper-1", {**envelope, "ciphertext": raw.decode()})
    # Bob re-sends Alice's ciphertext from his own device (naming his own device id and key
    # in the deprecated fields, as the server insists when they are present), claiming her
    # session as his.
    stolen = {**envelope, "device_id": bob.device_id, "sender_key": bob.crypto.olm.curve25519}
    await bob.transport.send_message(conv, "steal-1", stolen)

    got = [e.message for e in await bob.sync() if isinstance(e, MessageEvent)]
    assert [(m.seq, m.state, m.code) for m in got] == [
        (1, MessageState.DECRYPTED, None),
        (2, MessageState.FAILED, "replay"),
        (3, MessageState.FAILED, "tampered"),
        (4, MessageState.FAILED, "untrusted_sender"),
    ]
    assert got[0].text == original
    assert "replayed message" in (got[1].problem or "")
    assert "tampered with" in (got[2].problem or "")
    seen_by_alice = {m.seq: m for m in await alice.history(conv)}
    assert (
        seen_by_alice[4].state is MessageState.FAILED
        and seen_by_alice[4].code == "untrusted_sender"
    )
    assert "not the device that shared" in (seen_by_alice[4].problem or "")
    await assert_no_plaintext(server, db_url, [original])
