"""State files: atomic, private, locked, and refused when they belong to something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearpost.audit import StateError
from clearpost.audit.state import load_json, lock_state, save_json


def test_saves_are_atomic_private_and_leave_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "state.json"
    assert load_json(path) is None
    save_json(path, {"a": 1})
    save_json(path, {"a": 2})
    assert load_json(path) == {"a": 2}
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_one_process_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with lock_state(path), pytest.raises(StateError, match="another process"), lock_state(path):
        pass
    with lock_state(path):
        pass


def test_a_state_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    from clearpost.audit import AuditState, WitnessState

    path = tmp_path / "state.json"
    save_json(path, {"kind": "clearpost-witness-state", "version": 1})
    with pytest.raises(StateError, match="not a clearpost-audit-state"):
        AuditState.from_json(load_json(path), path)
    with pytest.raises(StateError, match="damaged"):
        WitnessState.from_json(load_json(path), path)
