"""The witness: cosigns consistent growth, refuses everything else, never forgets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from clearpost.audit import (
    CosignatureRejected,
    Fork,
    LogClient,
    Outcome,
    Rollback,
    StateError,
    generate_witness_key,
    load_witness_key,
    open_witness,
    write_witness_key,
)
from clearpost.core.tlog import (
    Cosigner,
    NoteSignature,
    Signer,
    parse_note_unverified,
    verify_cosignature,
)

from .fakelog import FakeLog

Connect = Callable[[FakeLog], LogClient]
NOW = 1_700_000_000


@pytest.fixture
def cosigner(fake_log: FakeLog) -> Cosigner:
    cosigner = Cosigner.generate("witness.test/w")
    fake_log.witnesses[cosigner.name] = cosigner.verifier()
    return cosigner


def state_of(path: Path) -> dict[str, object]:
    data: dict[str, object] = orjson.loads(path.read_bytes())
    return data


async def test_cosigns_the_first_checkpoint_and_consistent_growth_once(
    fake_log: FakeLog, connect: Connect, cosigner: Cosigner, tmp_path: Path
) -> None:
    state = tmp_path / "w.json"
    fake_log.grow(5)
    witness, tofu = await open_witness(connect(fake_log), cosigner, state, clock=lambda: NOW)
    assert tofu
    first = await witness.step()
    assert (first.outcome, first.checkpoint.size, first.previous_size) == (
        Outcome.COSIGNED,
        5,
        None,
    )
    (line,) = fake_log.cosignatures[5]
    text, _ = parse_note_unverified(fake_log.checkpoints[5])
    assert verify_cosignature(text, NoteSignature.from_line(line), cosigner.verifier()) == NOW

    fake_log.grow(7)
    second = await witness.step()
    assert (second.outcome, second.checkpoint.size, second.previous_size) == (
        Outcome.COSIGNED,
        12,
        5,
    )
    assert (await witness.step()).outcome is Outcome.UNCHANGED
    assert len(fake_log.cosignatures[12]) == 1
    assert state_of(state)["size"] == 12 and state_of(state)["posted"] is True


async def test_refuses_a_fork_a_rollback_and_a_regrown_history(
    fake_log: FakeLog, connect: Connect, cosigner: Cosigner, tmp_path: Path
) -> None:
    state = tmp_path / "w.json"
    fake_log.grow(4)
    other = fake_log.fork(4)
    other.witnesses = fake_log.witnesses
    fake_log.grow(4, tag="a")
    other.grow(4, tag="b")
    witness, _ = await open_witness(connect(fake_log), cosigner, state)
    await witness.step()

    shown_other, _ = await open_witness(connect(other), cosigner, state)
    with pytest.raises(Fork, match="REFUSING to cosign: the log signed two different trees"):
        await shown_other.step()
    other.grow(2, tag="b")
    with pytest.raises(Fork, match="cannot prove"):
        await shown_other.step()
    fake_log.roll_back(4)
    with pytest.raises(Rollback, match="already cosigned its checkpoint of 8"):
        await witness.step()
    assert 10 not in other.cosignatures and state_of(state)["size"] == 8


async def test_refuses_growth_whose_proof_fails(
    fake_log: FakeLog, connect: Connect, cosigner: Cosigner, tmp_path: Path
) -> None:
    fake_log.grow(3)
    witness, _ = await open_witness(connect(fake_log), cosigner, tmp_path / "w.json")
    await witness.step()
    fake_log.grow(3)
    fake_log.wrong_proofs = True
    with pytest.raises(Fork):
        await witness.step()


async def test_state_is_saved_before_publishing_and_the_cosignature_resent(
    fake_log: FakeLog, connect: Connect, tmp_path: Path
) -> None:
    cosigner = Cosigner.generate("witness.test/late")
    state = tmp_path / "w.json"
    fake_log.grow(3)
    witness, _ = await open_witness(connect(fake_log), cosigner, state)
    with pytest.raises(CosignatureRejected, match="unknown_witness"):
        await witness.step()
    assert state_of(state)["size"] == 3 and state_of(state)["posted"] is False

    fake_log.witnesses[cosigner.name] = cosigner.verifier()  # the operator configures it
    again, _ = await open_witness(connect(fake_log), cosigner, state)
    assert (await again.step()).outcome is Outcome.UNCHANGED
    assert len(fake_log.cosignatures[3]) == 1 and state_of(state)["posted"] is True


async def test_a_state_belongs_to_one_witness_key(
    fake_log: FakeLog, connect: Connect, cosigner: Cosigner, tmp_path: Path
) -> None:
    state = tmp_path / "w.json"
    fake_log.grow(2)
    witness, _ = await open_witness(connect(fake_log), cosigner, state)
    await witness.step()
    with pytest.raises(StateError, match="belongs to witness key"):
        await open_witness(connect(fake_log), Cosigner.generate("witness.test/x"), state)


def test_witness_keys_round_trip_and_are_never_clobbered(tmp_path: Path) -> None:
    path = tmp_path / "w.key"
    cosigner, skey = generate_witness_key("witness.test/k")
    write_witness_key(path, skey)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_witness_key(path).vkey == cosigner.vkey
    with pytest.raises(StateError, match="refusing to overwrite"):
        write_witness_key(path, generate_witness_key("witness.test/k")[1])
    log_key = tmp_path / "log.key"
    log_key.write_text(Signer.generate("log").reveal_skey())
    with pytest.raises(StateError, match="not a witness key"):
        load_witness_key(log_key)
