"""The tile audit against a fake log with real crypto: every changed node or entry, at any
size and position, is found and named on the first run (nothing is sampled)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearpost.audit import (
    BadProof,
    EntryMismatch,
    Fork,
    LogClient,
    MissingEntries,
    audit_log,
)
from clearpost.core.tlog import NodeId

from .fakelog import FakeLog

Connect = Callable[[FakeLog], LogClient]
FIXTURE = [HealthCheck.function_scoped_fixture]
EVIL = hashlib.sha256(b"evil").digest()


async def test_a_clean_log_verifies_from_tiles_and_checks_every_node(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    size = fake_log.grow(600)
    report = await audit_log(connect(fake_log), tmp_path / "a.json")
    assert report.from_tiles and report.checkpoint.size == size
    assert report.nodes_checked == 2 * size - size.bit_count()  # every perfect subtree
    paths = {r.url.path for r in fake_log.requests}
    assert "/v1/log/proof/inclusion" not in paths and "/v1/log/entries" not in paths


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE)
@given(size=st.integers(2, 700), data=st.data())
async def test_any_corrupted_stored_node_is_named(
    size: int, data: st.DataObject, connect: Connect
) -> None:
    log = FakeLog()
    log.grow(size)
    level = data.draw(st.integers(0, size.bit_length() - 1))
    index = data.draw(st.integers(0, (size >> level) - 1))
    log.bad_nodes[NodeId(level, index)] = EVIL
    with pytest.raises(BadProof, match=f"node at level {level}, index {index} "):
        await audit_log(connect(log), None)


@settings(max_examples=25, deadline=None, suppress_health_check=FIXTURE)
@given(size=st.integers(1, 700), data=st.data())
async def test_any_changed_or_missing_entry_is_named(
    size: int, data: st.DataObject, connect: Connect
) -> None:
    log = FakeLog()
    log.grow(size)
    index = data.draw(st.integers(0, size - 1))
    log.changed[index] = b'{"changed":true}'
    with pytest.raises(EntryMismatch, match=f"entry {index} was changed") as caught:
        await audit_log(connect(log), None)
    assert caught.value.index == index
    del log.changed[index]
    log.missing.add(index)
    with pytest.raises(MissingEntries, match=f"entry {index} is missing"):
        await audit_log(connect(log), None)


async def test_a_rewritten_history_is_a_fork(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    state = tmp_path / "a.json"
    n = fake_log.grow(300)
    await audit_log(connect(fake_log), state)
    other = fake_log.fork(n - 10)
    other.grow(20, tag="other")
    with pytest.raises(Fork, match=f"does not extend the tree of {n} entries"):
        await audit_log(connect(other), state)
