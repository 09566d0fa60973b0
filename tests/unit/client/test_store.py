"""The device store: sealed with the passphrase, checked at open, movable, one user at a time."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from clearpost.client import DeviceStore, KdfParams, StoreError, WrongPassphrase
from clearpost.client._seal import SealBroken, Sealer
from clearpost.client.store import Login

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)


def make(path: Path, passphrase: str = "right passphrase") -> DeviceStore:
    store = DeviceStore.create(path, passphrase, FAST)
    store.set_login(Login("http://server", "@alice", "ABCDEFGHIJ", "cpt_secret-token"))
    store.set_sealed("note", b"sealed value")
    store.close()
    return store


def test_wrong_passphrase_fails_at_open(tmp_path: Path) -> None:
    make(tmp_path / "a.store")
    with pytest.raises(WrongPassphrase) as caught:
        DeviceStore.open(tmp_path / "a.store", "wrong passphrase")
    assert caught.value.code == "wrong_passphrase"
    assert "passphrase" in caught.value.message
    store = DeviceStore.open(tmp_path / "a.store", "right passphrase")  # still fine afterwards
    assert store.get_sealed("note") == b"sealed value"
    store.close()


def test_a_copied_store_opens_elsewhere(tmp_path: Path) -> None:
    make(tmp_path / "a.store")
    (tmp_path / "moved").mkdir()
    shutil.copy(tmp_path / "a.store", tmp_path / "moved" / "other-name")
    store = DeviceStore.open(tmp_path / "moved" / "other-name", "right passphrase")
    assert store.login == Login("http://server", "@alice", "ABCDEFGHIJ", "cpt_secret-token")
    store.close()


def test_secrets_are_not_in_the_file(tmp_path: Path) -> None:
    make(tmp_path / "a.store")
    raw = (tmp_path / "a.store").read_bytes()
    assert b"cpt_secret-token" not in raw and b"sealed value" not in raw


def test_there_is_no_default_passphrase(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as caught:
        DeviceStore.create(tmp_path / "a.store", "", FAST)
    assert caught.value.code == "passphrase_required"


def test_one_process_at_a_time(tmp_path: Path) -> None:
    make(tmp_path / "a.store")
    first = DeviceStore.open(tmp_path / "a.store", "right passphrase")
    first.mark_open()
    with pytest.raises(StoreError) as caught:
        DeviceStore.open(tmp_path / "a.store", "right passphrase")
    assert caught.value.code == "store_locked"
    first.close()


def test_refuses_other_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError) as caught:
        DeviceStore.open(junk, "x")
    assert caught.value.code == "store_corrupt"
    with pytest.raises(StoreError) as caught:
        DeviceStore.open(tmp_path / "missing", "x")
    assert caught.value.code == "store_missing"
    make(tmp_path / "a.store")
    with pytest.raises(StoreError) as caught:
        DeviceStore.create(tmp_path / "a.store", "x", FAST)
    assert caught.value.code == "store_exists"


def test_sealed_values_are_bound_to_their_place(tmp_path: Path) -> None:
    store = DeviceStore.create(tmp_path / "a.store", "p", FAST)
    blob = store.seal(b"message body", b"msg:c_1:1")
    assert store.unseal(blob, b"msg:c_1:1") == b"message body"
    with pytest.raises(WrongPassphrase):
        store.unseal(blob, b"msg:c_1:2")  # moved to another row
    store.close()


def test_sealer_detects_any_change() -> None:
    sealer = Sealer(b"e" * 32, b"m" * 32)
    blob = sealer.seal(b"hello world", b"aad")
    assert sealer.unseal(blob, b"aad") == b"hello world"
    assert sealer.seal(b"hello world", b"aad") != blob  # a fresh nonce every time
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 1
        with pytest.raises(SealBroken):
            sealer.unseal(bytes(tampered), b"aad")
    assert blob[:1] == b"\x02"  # AES-256-GCM
    with pytest.raises(SealBroken):
        Sealer(b"f" * 32, b"m" * 32).unseal(blob, b"aad")  # another passphrase's key
    with pytest.raises(SealBroken):
        sealer.unseal(blob[:20], b"aad")
    assert sealer.unseal(sealer.seal(b"", b""), b"") == b""
    with pytest.raises(ValueError):
        Sealer(b"k" * 32, b"k" * 32)


# Sealed by the version-1 sealer (SHAKE-256 keystream + HMAC-SHA-256) that stores made before
# AES-GCM use, with enc key bytes 0..31 and MAC key bytes 32..63. Such stores must still open.
V1_BLOB = bytes.fromhex(
    "01b37e1a9a260c866d5ab3549ddbfa2fd597befadfb8caa4d5fa46b216013cabaabc56f2db9ab4701cc60cb4"
    "4146a33773ad0f4177118bd301afa83692b2cd74c3065f5f6155"
)
V1_EMPTY = bytes.fromhex(
    "01a3b7f9726d41eb5859bdc5a5c6fffc2ab04950ebe9839b9312efd24136982e8a4e12e1028d743d8d3523"
    "9553efc0b1a1"
)


def test_version_1_blobs_from_older_stores_still_open() -> None:
    sealer = Sealer(bytes(range(32)), bytes(range(32, 64)))
    assert sealer.unseal(V1_BLOB, b"msg:c1:7") == b"hello from a v1 store"
    assert sealer.unseal(V1_EMPTY, b"meta:empty") == b""
    with pytest.raises(SealBroken):
        sealer.unseal(V1_BLOB, b"msg:c1:8")  # bound to its place, as before
    with pytest.raises(SealBroken):
        Sealer(bytes(range(32)), bytes(range(1, 33))).unseal(V1_BLOB, b"msg:c1:7")
    for i in range(len(V1_BLOB)):
        tampered = bytearray(V1_BLOB)
        tampered[i] ^= 1
        with pytest.raises(SealBroken):
            sealer.unseal(bytes(tampered), b"msg:c1:7")


def test_nonces_never_repeat_and_a_forked_child_draws_its_own() -> None:
    sealer = Sealer(b"e" * 32, b"m" * 32)
    nonces = {sealer.seal(b"x", b"")[1:13] for _ in range(2000)}  # crosses several pools
    assert len(nonces) == 2000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next nonce must not be the parent's next one
        os.write(write, sealer.seal(b"x", b"")[1:13])
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 12)
    os.close(read)
    os.close(write)
    assert sealer.seal(b"x", b"")[1:13] != child
