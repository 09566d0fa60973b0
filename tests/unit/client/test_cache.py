"""The decrypted-message cache: sealed pages, newest write wins, replay map kept; a store of
the older version refused with what to do."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from clearpost.cli.main import app
from clearpost.client import DeviceStore, KdfParams, StoreError, WrongPassphrase
from clearpost.client import cache as cache_mod
from clearpost.client.cache import MessageCache
from clearpost.client.content import ShareCard, Text
from clearpost.client.model import Message, MessageState
from clearpost.client.store import FORMAT

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASS = "right passphrase"
ENVELOPE = {"algorithm": "m.megolm.v1.aes-sha2", "session_id": "S1", "ciphertext": "AwgA"}


def decrypted(seq: int, body: str, conv: str = "!c1", sender: str = "@bob") -> Message:
    return Message(conv, seq, sender, "BOBDEV", 1000 + seq, MessageState.DECRYPTED, Text(body))


def waiting(seq: int, conv: str = "!c1") -> Message:
    return Message(
        conv, seq, "@bob", "BOBDEV", 1000 + seq, MessageState.WAITING_FOR_KEY, None,
        "waiting for the key from @bob's device BOBDEV", "waiting_for_key",
    )  # fmt: skip


def reopen(path: Path) -> tuple[DeviceStore, MessageCache]:
    store = DeviceStore.open(path, PASS)
    return store, MessageCache(store)


def commit(store: DeviceStore, cache: MessageCache) -> None:
    """As ``Crypto.commit`` does: the cache writes its pages, then the store commits."""
    cache.flush()
    store.commit()


def close(store: DeviceStore, cache: MessageCache) -> None:
    cache.flush()
    store.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    DeviceStore.create(tmp_path / "d.store", PASS, FAST).close()
    return tmp_path / "d.store"


def test_messages_read_back_in_order_from_pages_and_buffer(path: Path) -> None:
    store, cache = reopen(path)
    cache.put(decrypted(2, "two"), "S1", 1, {})
    cache.put(decrypted(1, "one"), "S1", 0, {})
    commit(store, cache)  # page 1: seqs 2 and 1
    cache.put(decrypted(3, "three", sender="@alice"), "S2", 0, {})  # still buffered
    cache.put(decrypted(1, "other conversation", conv="!c2"), "S3", 0, {})
    assert [m.text for m in cache.history("!c1")] == ["one", "two", "three"]
    assert [m.seq for m in cache.history("!c1", after=1, limit=1)] == [2]
    assert cache.get("!c1", 3) == decrypted(3, "three", sender="@alice")
    assert cache.get("!c1", 2) == decrypted(2, "two")
    assert cache.get("!c1", 9) is None
    assert cache.count_from("!c1", 0, "@alice") == 1
    assert cache.count_from("!c1", 1, "@bob") == 1
    close(store, cache)
    store, cache = reopen(path)
    assert [m.text for m in cache.history("!c1")] == ["one", "two", "three"]
    assert [m.text for m in cache.history("!c2")] == ["other conversation"]
    assert store.query("SELECT count(*) FROM message_pages")[0][0] == 3  # (conv, session) pairs
    store.close()


def test_a_newer_write_wins_and_waiting_messages_keep_their_envelope(path: Path) -> None:
    store, cache = reopen(path)
    cache.put(waiting(1), "S1", None, ENVELOPE)
    cache.put(waiting(2), "S1", None, orjson.dumps(ENVELOPE).decode())
    commit(store, cache)
    assert [(raw["seq"], raw["content"]) for raw, _ in cache.waiting("S1")] == [
        (1, ENVELOPE),
        (2, ENVELOPE),
    ]
    cache.put(decrypted(1, "now readable"), "S1", 0, {})  # the key arrived
    commit(store, cache)
    close(store, cache)
    store, cache = reopen(path)
    assert [m.state for m in cache.history("!c1")] == [
        MessageState.DECRYPTED,
        MessageState.WAITING_FOR_KEY,
    ]
    assert [raw["seq"] for raw, _ in cache.waiting("S1")] == [2]
    assert cache.history("!c1")[1].problem == "waiting for the key from @bob's device BOBDEV"
    # The same message stored later under another session: the older session no longer has it.
    cache.put(decrypted(2, "from elsewhere"), "S9", 4, {})
    commit(store, cache)
    assert cache.waiting("S1") == []
    store.close()


def test_the_replay_map_survives_a_restart(path: Path) -> None:
    store, cache = reopen(path)
    cache.put(decrypted(1, "one"), "S1", 0, {})
    cache.put(decrypted(2, "two"), "S1", 1, {})
    assert cache.seen("S1", 1) == ("!c1", 2)  # before any write
    close(store, cache)
    store, cache = reopen(path)
    assert cache.seen("S1", 0) == ("!c1", 1)
    assert cache.seen("S1", 1) == ("!c1", 2)
    assert cache.seen("S1", 2) is None and cache.seen("S2", 0) is None
    store.close()


def test_every_kind_of_entry_reads_back_exactly(path: Path) -> None:
    """Short entries (decrypted, from the page's sender device) and full ones share pages."""
    store, cache = reopen(path)
    failed = Message(
        "!c1", 3, "@mallory", "EVIL", 7, MessageState.FAILED, None,
        "the sender of this message is not the device that shared its session key",
        "untrusted_sender",
    )  # fmt: skip
    messages = [
        (decrypted(1, "from the sender"), 0),
        (Message("!c1", 2, "@bob", "OTHERDEV", 9, MessageState.DECRYPTED, Text("other")), 1),
        (failed, None),
        (waiting(4), None),
        (decrypted(5, ""), 2),
    ]  # fmt: skip
    for m, index in messages:
        cache.put(m, "S1", index, ENVELOPE)
    close(store, cache)
    store, cache = reopen(path)
    assert cache.history("!c1") == [m for m, _ in messages]
    assert store.query("SELECT count(*) FROM message_pages")[0][0] == 1
    assert [(raw["seq"], raw["content"]) for raw, _ in cache.waiting("S1")] == [(4, ENVELOPE)]
    assert cache.seen("S1", 2) == ("!c1", 5) and cache.seen("S1", 1) == ("!c1", 2)
    store.close()


def test_a_sent_message_reads_back_as_put_would_have_kept_it(path: Path) -> None:
    store, cache = reopen(path)
    card = ShareCard("A film", "https://example.org/f", "preview", "Streamer")
    cache.put_sent("!c1", 1, "@bob", "BOBDEV", 1001, "S1", 0, Text("one"))
    cache.put_sent("!c1", 2, "@bob", "BOBDEV", 1002, "S1", 1, card)
    expected = [
        decrypted(1, "one"),
        Message("!c1", 2, "@bob", "BOBDEV", 1002, MessageState.DECRYPTED, card),
    ]
    assert cache.history("!c1") == expected and cache.seen("S1", 1) == ("!c1", 2)
    close(store, cache)
    store, cache = reopen(path)
    assert cache.history("!c1") == expected and cache.seen("S1", 1) == ("!c1", 2)
    store.close()


def test_replay_maps_let_go_are_read_again(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "SEEN_SESSIONS", 2)
    store, cache = reopen(path)
    cache.put(decrypted(1, "one"), "S1", 0, {})
    commit(store, cache)
    cache.put(decrypted(2, "two"), "S2", 0, {})
    cache.new_session("S3")  # S1's map is let go
    assert set(cache._seen) == {"S2", "S3"}
    assert cache.seen("S1", 0) == ("!c1", 1)  # read again from its page
    cache.put(decrypted(3, "three"), "S3", 5, {})  # still buffered
    assert cache.seen("S2", 0) == ("!c1", 2) and cache.seen("S3", 5) == ("!c1", 3)
    assert len(cache._seen) == 2
    store.close()


def test_share_cards_and_unknown_content_read_back(path: Path) -> None:
    store, cache = reopen(path)
    card = ShareCard("A film", "https://example.org/f", None, "Streamer")
    cache.put(Message("!c1", 1, "@bob", "D", 0, MessageState.DECRYPTED, card), "S1", 0, {})
    commit(store, cache)
    assert cache.get("!c1", 1) == Message("!c1", 1, "@bob", "D", 0, MessageState.DECRYPTED, card)
    store.close()


def test_pages_are_sealed_and_bound_to_their_place(path: Path) -> None:
    store, cache = reopen(path)
    cache.put(decrypted(1, "a secret sentence"), "S1", 0, {})
    cache.put(decrypted(1, "another secret", conv="!c2"), "S2", 0, {})
    close(store, cache)
    assert b"secret" not in path.read_bytes()
    conn = sqlite3.connect(path)
    [_, b] = [bytes(r[0]) for r in conn.execute("SELECT sealed FROM message_pages ORDER BY page")]
    conn.execute("UPDATE message_pages SET sealed = ? WHERE conversation_id = '!c1'", (b,))
    conn.commit()
    conn.close()
    store, cache = reopen(path)
    with pytest.raises(WrongPassphrase):
        cache.history("!c1")
    assert [m.text for m in cache.history("!c2")] == ["another secret"]
    store.close()


# -- formats ---------------------------------------------------------------------------------

OLD_STORE = Path(__file__).parent / "data" / "store-format-2.store"
"""A device store written by Clearpost before the Matrix formats (store format 2, user id
``@alice``), made with that version's own ``DeviceStore`` (passphrase ``old passphrase``)."""


def test_a_store_of_the_older_version_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "alice.store"
    shutil.copy(OLD_STORE, path)
    with pytest.raises(StoreError) as caught:
        DeviceStore.open(path, "old passphrase")
    assert caught.value.code == "store_outdated"
    assert "older Clearpost (store format 2)" in caught.value.message
    assert "clearpost account login" in caught.value.message
    with pytest.raises(StoreError) as again:  # the file was left as it was: same answer
        DeviceStore.open(path, "old passphrase")
    assert again.value.code == "store_outdated"
    # the CLI says the same in one line, no traceback
    env = {"CLEARPOST_STORE": str(path), "CLEARPOST_PASSPHRASE": "old passphrase"}
    result = CliRunner().invoke(app, ["chat", "inbox"], env=env)
    assert result.exit_code == 1
    assert (
        result.output.startswith("error: the device store") and "(store_outdated)" in result.output
    )
    assert "Traceback" not in result.output and result.exception.__class__ is SystemExit


def test_a_newer_format_is_refused(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE name = 'format'", (str(FORMAT + 1).encode(),))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        DeviceStore.open(path, PASS)
    assert caught.value.code == "store_corrupt"
