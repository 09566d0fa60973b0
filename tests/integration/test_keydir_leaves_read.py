"""Reading the key directory's stored leaves, as a server does to rebuild its tree at start
and to catch up with the latest epoch: every leaf exactly once, whichever way it is read
(SQLite's one streamed statement, PostgreSQL's pages along the primary key, the last
epochs by epoch), and none past the epoch the caller read; when entries about people
were last counted, as a new sequencer reads it; and the device keys of an epoch's changed
accounts, read at once."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import Connection, insert

from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.schema import devices, keydir_epochs, keydir_leaves, users
from clearpost.storage.sql import keydir as ks

PER_EPOCH = [40, 1, 75, 3, 60]  # leaves each epoch stored, epochs 0..4


def _store(conn: Connection, leaves: list[dict[str, object]]) -> None:
    conn.execute(insert(keydir_leaves), leaves)


def _read(conn: Connection, after: int, upto: int | None) -> list[tuple[bytes, bytes, int]]:
    return list(ks.leaves_sync(conn, after, upto))


async def test_every_leaf_is_read_once_in_pages_and_by_epoch(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ks, "LEAF_READ_BATCH", 7)  # many pages, some ending mid-epoch
    want = {
        (secrets.token_bytes(32), secrets.token_bytes(32), e)
        for e, n in enumerate(PER_EPOCH)
        for _ in range(n)
    }
    db = Database(db_url)
    try:
        await upgrade(db)
        await db.run_write(_store, [{"idx": i, "commitment": c, "epoch": e} for i, c, e in want])
        for after, upto in [(-1, None), (-1, 4), (-1, 2), (-1, 0), (0, 4), (1, 3), (2, None)]:
            got = await db.run_read(_read, after, upto)
            top = 4 if upto is None else upto
            expected = {x for x in want if after < x[2] <= top}
            assert len(got) == len(set(got)) == len(expected), (after, upto)
            assert set(got) == expected, (after, upto)
            if after >= 0:  # the last epochs come by epoch
                assert [x[2] for x in got] == sorted(x[2] for x in got)
        assert await db.run_read(_read, 4, None) == []
    finally:
        await db.close()


THROUGHS = [0, 0, 3, 3, 3, 8, 8, 12]  # epochs 0..7: counts at epochs 2, 5 and 7


def _epochs(conn: Connection) -> None:
    conn.execute(
        insert(keydir_epochs),
        [
            {
                "epoch": e,
                "root": bytes(32),
                "log_index": 10 * e,
                "through": t,
                "created_at": 1000 + e,
                "proof": b"",
            }
            for e, t in enumerate(THROUGHS)
        ],
    )


async def test_when_a_count_was_taken_is_the_first_epoch_with_its_through(db_url: str) -> None:
    """What a new sequencer reads to know when entries about people were last counted."""
    db = Database(db_url)
    try:
        await upgrade(db)
        assert await db.run_read(ks.counted_at_sync, 0) is None  # no epoch yet
        await db.run_write(_epochs)
        for through, epoch in [(0, 0), (3, 2), (8, 5), (12, 7)]:
            assert await db.run_read(ks.counted_at_sync, through) == 1000 + epoch, through
        for through in (1, 9, 13):  # no epoch counted up to there
            assert await db.run_read(ks.counted_at_sync, through) is None, through
    finally:
        await db.close()


DEVICES_OF = {  # each account's devices (id, uploaded keys or None: not uploaded yet)
    "@alice:t": [("BBB", '{"b":1}'), ("AAA", '{"a":1}'), ("CCC", None)],
    "@bob:t": [("ZZZ", '{"z":1}')],
    "@carol:t": [("DDD", None)],
    "@dave:t": [],
}


def _accounts(conn: Connection) -> None:
    conn.execute(
        insert(users), [{"user_id": u, "password_hash": "x", "created_at": 1} for u in DEVICES_OF]
    )
    conn.execute(
        insert(devices),
        [
            {
                "user_id": u,
                "device_id": d,
                "token_hash": secrets.token_hex(32),
                "created_at": 1,
                "device_keys": keys,
            }
            for u, mine in DEVICES_OF.items()
            for d, keys in mine
        ],
    )


async def test_an_epochs_accounts_device_keys_are_read_at_once(db_url: str) -> None:
    """Each account gets its own uploaded keys, in device order, and nobody else's; an
    account with none (not uploaded, no device, no such account) gets an empty list."""
    db = Database(db_url)
    try:
        await upgrade(db)
        await db.run_write(_accounts)
        asked = [*DEVICES_OF, "@nobody:t"]
        assert await db.run_read(ks.device_keys_sync, asked) == {
            "@alice:t": ['{"a":1}', '{"b":1}'],
            "@bob:t": ['{"z":1}'],
            "@carol:t": [],
            "@dave:t": [],
            "@nobody:t": [],
        }
        assert await db.run_read(ks.device_keys_sync, ["@bob:t"]) == {"@bob:t": ['{"z":1}']}
        assert await db.run_read(ks.device_keys_sync, []) == {}
    finally:
        await db.close()
