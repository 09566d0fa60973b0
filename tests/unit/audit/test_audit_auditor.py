"""The auditor against a log that is honest, then one that is not (real crypto, fake HTTP)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from clearpost.audit import (
    AuditState,
    BadProof,
    BadSignature,
    EntryMismatch,
    Fork,
    LogClient,
    MissingEntries,
    Rollback,
    StateError,
    audit_log,
)
from clearpost.core.tlog import Signer

from .fakelog import ORIGIN, FakeLog

Connect = Callable[[FakeLog], LogClient]

# These tests drive the JSON entries-and-proofs path (``--proofs``) against the fake log;
# the tile path is tested on real servers (tests/integration/test_log_audit.py).
audit_api = functools.partial(audit_log, tiles=False)


def entry_starts(log: FakeLog) -> list[int]:
    return [int(r.url.params["start"]) for r in log.requests if r.url.path == "/v1/log/entries"]


async def test_a_clean_log_verifies_and_the_next_run_fetches_only_new_entries(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(10)
    first = await audit_api(connect(fake_log), state)
    assert (first.checkpoint.size, first.hashed, first.previous_size) == (10, 10, None)
    assert first.trusted_on_first_use

    fake_log.grow(2500)
    fake_log.requests.clear()
    second = await audit_api(connect(fake_log), state)
    assert (second.hashed_from, second.hashed, second.previous_size) == (10, 2500, 10)
    assert not second.trusted_on_first_use
    assert min(entry_starts(fake_log)) == 10
    saved = AuditState.from_json(orjson.loads(state.read_bytes()), state)
    assert saved.compact.size == 2510 and saved.compact.root() == saved.checkpoint.root_hash

    fake_log.requests.clear()
    third = await audit_api(connect(fake_log), state, full=True)
    assert third.hashed == 2510 and min(entry_starts(fake_log)) == 0


@pytest.mark.parametrize(("size", "index"), [(1, 0), (2, 1), (7, 3), (1024, 1023), (2500, 1999)])
async def test_a_changed_entry_is_named(
    fake_log: FakeLog, connect: Connect, size: int, index: int
) -> None:
    fake_log.grow(size)
    fake_log.changed[index] = b'{"evil":true}'
    with pytest.raises(EntryMismatch) as caught:
        await audit_api(connect(fake_log), None)
    assert caught.value.index == index
    assert f"entry {index} was changed" in caught.value.message


async def test_changes_after_the_last_audit_are_found_incrementally_and_before_it_with_full(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(100)
    await audit_api(connect(fake_log), state)
    fake_log.grow(50)
    fake_log.changed[120] = b"{}"
    with pytest.raises(EntryMismatch) as caught:
        await audit_api(connect(fake_log), state)
    assert caught.value.index == 120
    del fake_log.changed[120]
    fake_log.changed[40] = b"{}"
    await audit_api(connect(fake_log), state)  # entry 40 was verified before: not re-read
    with pytest.raises(EntryMismatch) as caught:
        await audit_api(connect(fake_log), state, full=True)
    assert caught.value.index == 40


async def test_a_missing_entry_is_named(fake_log: FakeLog, connect: Connect) -> None:
    fake_log.grow(1500)
    fake_log.missing.add(1234)
    with pytest.raises(MissingEntries) as caught:
        await audit_api(connect(fake_log), None)
    assert caught.value.index == 1234


async def test_a_rollback_is_caught_with_both_checkpoints_as_evidence(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(5)
    fake_log.grow(5)
    await audit_api(connect(fake_log), state)
    fake_log.roll_back(5)
    with pytest.raises(Rollback) as caught:
        await audit_api(connect(fake_log), state)
    assert [note.split("\n")[1] for note in caught.value.evidence] == ["10", "5"]


async def test_two_histories_are_a_fork_at_the_same_size_and_after(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(6)
    other = fake_log.fork(6)
    fake_log.grow(4, tag="a")
    other.grow(4, tag="b")
    await audit_api(connect(fake_log), state)
    with pytest.raises(Fork, match="two different trees of 10 entries"):
        await audit_api(connect(other), state)
    other.grow(3, tag="b")
    with pytest.raises(Fork, match="does not extend the tree of 10 entries"):
        await audit_api(connect(other), state)
    with pytest.raises(Fork):
        await audit_api(connect(other), state, full=True)
    assert orjson.loads(state.read_bytes())["size"] == 10  # a failed audit saves nothing


async def test_a_log_with_right_data_but_wrong_proofs_is_caught(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(9)
    await audit_api(connect(fake_log), state)
    fake_log.grow(4)
    fake_log.wrong_proofs = True
    with pytest.raises(BadProof, match="consistency proof"):
        await audit_api(connect(fake_log), state)
    with pytest.raises(BadProof, match="inclusion proof for entry 0"):
        await audit_api(connect(fake_log), None)


async def test_a_checkpoint_from_another_key_is_refused(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(3)
    await audit_api(connect(fake_log), state)
    impostor = FakeLog(Signer.generate(ORIGIN), list(fake_log.bodies))
    impostor.publish()
    with pytest.raises(BadSignature, match="not signed by the log key"):
        await audit_api(connect(impostor), state)
    with pytest.raises(StateError, match="does not match"):
        await audit_api(connect(fake_log), state, vkey=impostor.signer.vkey)


async def test_a_damaged_state_file_is_refused(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    fake_log.grow(3)
    await audit_api(connect(fake_log), state)
    data = orjson.loads(state.read_bytes())
    data["compact_range"][0] = data["root"][::-1]
    state.write_bytes(orjson.dumps(data))
    with pytest.raises(StateError, match="damaged"):
        await audit_api(connect(fake_log), state)
    state.write_text("{")
    with pytest.raises(StateError, match="not JSON"):
        await audit_api(connect(fake_log), state)
