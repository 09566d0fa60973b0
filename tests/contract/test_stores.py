"""One storage contract, run against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clearpost.core.errors import ClearpostError, Conflict, NotFound
from clearpost.storage.db import Database
from clearpost.storage.migrations import current_revision, upgrade
from clearpost.storage.sql import stream
from clearpost.storage.sql.accounts import AccountStore
from clearpost.storage.sql.conversations import ConversationStore
from clearpost.storage.sql.keys import KeyStore
from clearpost.storage.sql.messages import MessageStore, NewMessage, StoredMessage
from clearpost.storage.sql.syncview import SyncView
from clearpost.storage.sql.todevice import ToDeviceStore

ENV = '{"algorithm":"m.megolm.v1.aes-sha2"}'


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.close()


async def _users(db: Database, *names: str) -> None:
    accounts = AccountStore(db)
    for n in names:
        await accounts.create_user(f"@{n}", "hash", 0)
        await accounts.add_device(f"@{n}", "DEV" + n.upper()[:7].ljust(7, "X"), f"tok-{n}", None, 0)


def _msg(conv: str, user: str, txn: str) -> NewMessage:
    return NewMessage(conv, user, "DEV" + user[1:].upper()[:7].ljust(7, "X"), txn, ENV, 1)


async def test_migrations_are_idempotent(db: Database) -> None:
    await upgrade(db)
    from alembic.script import ScriptDirectory

    from clearpost.storage.migrations import alembic_config

    assert (
        await current_revision(db)
        == ScriptDirectory.from_config(alembic_config()).get_current_head()
    )


async def test_usernames_are_unique(db: Database) -> None:
    await _users(db, "alice")
    with pytest.raises(Conflict) as err:
        await AccountStore(db).create_user("@alice", "h", 0)
    assert err.value.code == "username_taken"


async def test_sequence_numbers_are_gap_free_under_concurrency(db: Database) -> None:
    await _users(db, "alice", "bob")
    convs = ConversationStore(db)
    conv, _ = await convs.create("c_" + "a" * 22, "group", "@alice", ["@alice", "@bob"], None, 0)
    store = MessageStore(db)

    async def send_batch(k: int) -> list[StoredMessage | ClearpostError]:
        batch = [_msg(conv, "@alice" if i % 2 else "@bob", f"b{k}-{i}") for i in range(10)]
        results, _ = await store.append(batch)
        return results

    results = [r for rs in await asyncio.gather(*(send_batch(k) for k in range(8))) for r in rs]
    seqs = sorted(r.seq for r in results if isinstance(r, StoredMessage))
    assert seqs == list(range(1, 81))
    positions = [r.pos for r in results if isinstance(r, StoredMessage)]
    assert len(set(positions)) == 80


async def test_append_is_idempotent_per_device_and_txn(db: Database) -> None:
    await _users(db, "alice", "bob")
    conv, _ = await ConversationStore(db).create(
        "c_" + "b" * 22, "direct", "@alice", ["@alice", "@bob"], "k", 0
    )
    store = MessageStore(db)
    first, _ = await store.append([_msg(conv, "@alice", "t1"), _msg(conv, "@alice", "t1")])
    again, _ = await store.append([_msg(conv, "@alice", "t1")])
    assert first[0] == first[1] == again[0]
    assert len(await store.history(conv, "@bob", 0, 10)) == 1


async def test_non_members_cannot_append_and_batch_neighbours_still_succeed(db: Database) -> None:
    await _users(db, "alice", "bob", "eve")
    conv, _ = await ConversationStore(db).create(
        "c_" + "c" * 22, "group", "@alice", ["@alice", "@bob"], None, 0
    )
    results, woken = await MessageStore(db).append(
        [_msg(conv, "@eve", "x"), _msg(conv, "@bob", "y")]
    )
    assert isinstance(results[0], NotFound)
    assert isinstance(results[1], StoredMessage) and results[1].seq == 1
    assert sorted(woken[conv]) == ["@alice", "@bob"]


async def test_history_starts_when_a_member_joined_and_stops_when_they_left(db: Database) -> None:
    await _users(db, "alice", "bob", "carol")
    convs, store = ConversationStore(db), MessageStore(db)
    conv, _ = await convs.create("c_" + "d" * 22, "group", "@alice", ["@alice", "@bob"], None, 0)
    await store.append([_msg(conv, "@alice", "before")])
    await convs.add_member(conv, "@alice", "@carol", 0)
    await store.append([_msg(conv, "@alice", "after")])
    assert [m.seq for m in await store.history(conv, "@carol", 0, 10)] == [2]
    assert [m.seq for m in await store.history(conv, "@bob", 0, 10)] == [1, 2]
    top = await _top(db)
    await convs.remove_member(conv, "@alice", "@bob")
    await store.append([_msg(conv, "@alice", "gone")])
    with pytest.raises(NotFound):
        await store.history(conv, "@bob", 0, 10)
    rows = await SyncView(db).read("@bob", "DEVBOBXXXX", 0, 100)  # what bob's sync sees
    assert [m.seq for m in rows.messages] == [1, 2] and top > 0


async def _top(db: Database) -> int:
    async with db.read() as conn:
        return await stream.current(conn)


async def test_one_time_keys_are_handed_out_once_even_concurrently(db: Database) -> None:
    await _users(db, "bob")
    keys = KeyStore(db)
    await keys.set_identity("@bob", "DEVBOBXXXX", "c", "e", "{}", 0)
    await keys.add_one_time_keys(
        "@bob",
        "DEVBOBXXXX",
        {f"k{i}": f'{{"key":"{i}"}}' for i in range(5)},
        ("fb", '{"key":"fallback"}'),
    )
    claims = await asyncio.gather(*(keys.claim([("@bob", "DEVBOBXXXX")], 5) for _ in range(8)))
    handed = [c[("@bob", "DEVBOBXXXX")] for c in claims]
    one_time = [k.key_id for k in handed if not k.fallback]
    assert sorted(one_time) == [f"k{i}" for i in range(5)]
    assert all(k.key_id == "fb" for k in handed if k.fallback) and len(handed) == 8
    with pytest.raises(Conflict):  # a claimed key id can never come back with another key
        await keys.add_one_time_keys("@bob", "DEVBOBXXXX", {"k0": '{"key":"other"}'}, None)
    assert await keys.counts("@bob", "DEVBOBXXXX") == (0, False)  # no unused fallback key


async def test_identity_keys_never_change(db: Database) -> None:
    await _users(db, "bob")
    keys = KeyStore(db)
    assert await keys.set_identity("@bob", "DEVBOBXXXX", "c", "e", "{}", 0) == {"@bob"}
    assert await keys.set_identity("@bob", "DEVBOBXXXX", "c", "e", "{}", 0) is None
    with pytest.raises(Conflict):
        await keys.set_identity("@bob", "DEVBOBXXXX", "c2", "e", "{}", 0)


async def test_to_device_is_idempotent_and_deleted_on_ack(db: Database) -> None:
    await _users(db, "alice", "bob")
    store = ToDeviceStore(db)
    target = {("@bob", "DEVBOBXXXX"): '{"x":1}', ("@bob", "NOSUCHDEVX"): '{"x":2}'}
    queued, unknown, stored = await store.send("@alice", "DEVALICEXX", "t1", target, 0)
    assert (queued, unknown, stored) == (1, [("@bob", "NOSUCHDEVX")], True)
    assert (await store.send("@alice", "DEVALICEXX", "t1", target, 0))[2] is False
    view = SyncView(db)
    top, pending = await view.position("@bob", "DEVBOBXXXX", 10**9)
    assert pending and len((await view.read("@bob", "DEVBOBXXXX", 0, 10)).to_device) == 1
    await store.acknowledge("@bob", "DEVBOBXXXX", top)
    assert (await view.read("@bob", "DEVBOBXXXX", 0, 10)).to_device == []
    assert (await view.position("@bob", "DEVBOBXXXX", top))[1] is False


async def test_deleting_a_device_removes_its_token_keys_and_mail(db: Database) -> None:
    await _users(db, "alice", "bob")
    await ConversationStore(db).create(
        "c_" + "e" * 22, "direct", "@alice", ["@alice", "@bob"], "ab", 0
    )
    keys, accounts = KeyStore(db), AccountStore(db)
    await ToDeviceStore(db).send("@alice", "DEVALICEXX", "t", {("@bob", "DEVBOBXXXX"): "{}"}, 0)
    told = await keys.delete_device("@bob", "DEVBOBXXXX", 0)
    assert told == {"@alice", "@bob"}
    assert await accounts.device_for_token("tok-bob") is None
    assert await keys.delete_device("@bob", "DEVBOBXXXX", 0) is None
