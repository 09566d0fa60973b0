"""Log entries about people are counted in their ``log:`` labels at most every
``keydir_log_seconds`` (issue 17): a partner reading a person's profile again and again adds
one directory version per interval, not one per read, and the access history is still
proven complete once the interval has passed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from clearpost.audit.errors import KeyDirTransitionInvalid
from clearpost.audit.http import LogClient
from clearpost.audit.keydir import audit_epochs
from clearpost.cli import me as me_cli
from clearpost.client.directory import DirectoryVerificationFailed
from clearpost.core.clock import FakeClock, SystemClock
from clearpost.server.services import keydir as keydir_service
from clearpost.server.services.keydir import _first_people
from clearpost.storage.schema import keydir_epochs, keydir_versions, tlog_entries
from clearpost.storage.sql import keydir as ks
from tests.integration.test_keydir_adversarial import _checkpoint, second_device
from tests.support import api
from tests.unit.client.partners import Partnered, partnered

ALICE_LOG = "log:@alice:clearpost.localhost"
EVERY = 30


async def versions_of(w: Partnered, label: str) -> int:
    async with w.services.db.read() as conn:
        found = await conn.execute(
            select(func.count())
            .select_from(keydir_versions)
            .where(keydir_versions.c.label == label)
        )
        return int(found.scalar_one())


async def epochs(w: Partnered) -> tuple[int, int]:
    """(how many epochs, the latest one's ``through``)."""
    async with w.services.db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(keydir_epochs))).scalar_one()
        through = (
            await conn.execute(
                select(keydir_epochs.c.through).order_by(keydir_epochs.c.epoch.desc()).limit(1)
            )
        ).scalar_one()
    return int(count), int(through)


async def stop_sequencer() -> None:
    """Stop the server's own sequencer loop, so that only the test's steps publish."""
    (loop,) = [t for t in asyncio.all_tasks() if t.get_name() == "clearpost-sequencer"]
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop


async def read_profile(w: Partnered, times: int) -> list[int]:
    """StreamCo reads Alice's profile; each read is logged about her. Their log indexes."""
    indexes = []
    for _ in range(times):
        r = await w.streamco.get("http://test/v1/partner/me")
        assert r.status_code == 200, r.text
        indexes.append(int(r.headers["clearpost-log-index"]))
    await w.integrate()
    return indexes


async def test_reads_within_the_interval_make_one_version_and_the_history_stays_complete(
    tmp_path: Path,
) -> None:
    clock = FakeClock(SystemClock().now_ms())
    async with partnered(tmp_path, clock=clock, keydir_log_seconds=EVERY) as w:
        clock.advance(EVERY + 1)
        await w.integrate()
        await w.integrate()  # the consent so far is counted
        before = await versions_of(w, ALICE_LOG)
        count, through = await epochs(w)
        assert before == 1

        reads = await read_profile(w, 5)
        await w.integrate()
        # within the interval: no version, no epoch, the count stays where it was
        assert await versions_of(w, ALICE_LOG) == before
        assert await epochs(w) == (count, through)
        log = await w.alice.verify_log()
        assert log.complete_through == through < reads[0]
        assert {e.index for e in log.entries} >= set(reads)  # shown (verified), not yet counted
        assert log.counted_every == EVERY
        with me_cli.out.capture() as shown:
            me_cli._summary_tail(log)
        assert "5 newer entries are not counted yet: the key directory counts them within 30 s" in (
            " ".join(shown.get().split())
        )

        clock.advance(EVERY + 1)
        await w.integrate()
        # one version counts all five reads; the history is proven complete past them
        assert await versions_of(w, ALICE_LOG) == before + 1
        new_count, new_through = await epochs(w)
        assert new_count == count + 1 and new_through > reads[-1]
        log = await w.alice.verify_log()
        assert log.complete_through == new_through

        await read_profile(w, 5)
        clock.advance(EVERY + 1)
        await w.integrate()
        assert await versions_of(w, ALICE_LOG) == before + 2


async def test_a_count_held_back_by_the_epoch_limit_goes_on_at_the_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An epoch takes at most ``MAX_ACCOUNTS_PER_EPOCH`` people: Bob's new device takes the
    only place, and Alice's entries are counted in the epoch right after (not an interval
    later)."""
    clock = FakeClock(SystemClock().now_ms())
    async with partnered(tmp_path, clock=clock, keydir_log_seconds=EVERY) as w:
        await stop_sequencer()  # the steps below are the test's own, one at a time
        clock.advance(EVERY + 1)
        await w.integrate()
        reads = await read_profile(w, 2)
        count, _ = await epochs(w)
        monkeypatch.setattr(keydir_service, "MAX_ACCOUNTS_PER_EPOCH", 1)
        login = asyncio.create_task(second_device(w, tmp_path, "bob"))
        while not await w.services.keydir.store.is_dirty(w.bob.user_id):  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # (the upload marks it in the database: no event)
        clock.advance(EVERY + 1)
        await w.integrate()  # Bob's device takes the only place; Alice's count stops short
        assert await versions_of(w, ALICE_LOG) == 1
        await w.integrate()  # the rest, at once: not an interval later
        await (await login).close()  # it returned once an epoch held the device
        async with w.services.db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        keydir_epochs.c.epoch, keydir_epochs.c.through, keydir_epochs.c.created_at
                    )
                    .where(keydir_epochs.c.epoch >= count)
                    .order_by(keydir_epochs.c.epoch)
                )
            ).all()
            labels = dict(
                (
                    await conn.execute(
                        select(keydir_versions.c.label, keydir_versions.c.epoch).where(
                            keydir_versions.c.epoch >= count
                        )
                    )
                ).all()
            )
        bob_at, alice_at = labels["devices:@bob:clearpost.localhost"], labels[ALICE_LOG]
        assert alice_at == bob_at + 1
        by_epoch = {e: (through, at) for e, through, at in rows}
        assert by_epoch[bob_at][0] == reads[0]  # the count stopped at Alice's first entry
        assert by_epoch[alice_at][0] > reads[-1]
        assert by_epoch[alice_at][1] == by_epoch[bob_at][1]  # the same moment: no interval


async def test_a_flood_of_device_changes_does_not_hold_a_count_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When as many accounts' devices changed as an epoch takes, the count still takes a
    quarter as many people besides: ``through`` moves, so the count stays as recent as
    clients and auditors require."""
    clock = FakeClock(SystemClock().now_ms())
    async with partnered(tmp_path, clock=clock, keydir_log_seconds=EVERY) as w:
        dave = await api.user(w.http, "dave")
        await stop_sequencer()
        clock.advance(EVERY + 1)
        await w.integrate()
        reads = await read_profile(w, 1)
        monkeypatch.setattr(keydir_service, "MAX_ACCOUNTS_PER_EPOCH", 4)
        everyone = [w.alice.user_id, w.bob.user_id, w.carol.user_id, dave.user_id]
        async with w.services.db.write() as conn:
            for user in everyone:
                await ks.mark_dirty(conn, user, clock.now_ms())
        clock.advance(EVERY + 1)
        await w.integrate()
        # the four accounts' devices (none changed: no version), and Alice's count besides
        assert await versions_of(w, ALICE_LOG) == 2
        assert (await epochs(w))[1] > reads[-1]
        for user in everyone:
            assert not await w.services.keydir.store.is_dirty(user)


def test_first_people_stops_before_the_first_entry_of_one_person_too_many() -> None:
    about = [(10, "a"), (11, "b"), (12, "a"), (13, "c"), (14, "b"), (15, "d")]
    assert _first_people(about, 2, 99) == (about[:3], 13)
    assert _first_people(about, 3, 99) == (about[:5], 15)
    assert _first_people(about, 4, 99) == (about, 99)
    assert _first_people(about, 0, 99) == ([], 10)
    assert _first_people([], 5, 99) == ([], 99)


async def test_a_count_the_server_stops_taking_fails_the_history_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that stops counting (``through`` frozen while epochs go on) could leave any
    newer entry out of a history that still checks as complete below ``through``. The
    answer shows when ``through`` was set (the epoch that set it and the one before, in the
    log), so a count older than the epoch's ``log_seconds`` plus a minute's slack fails
    Alice's check; the auditor refuses the epoch that keeps it."""
    clock = FakeClock(SystemClock().now_ms())
    async with partnered(tmp_path, clock=clock, keydir_log_seconds=EVERY) as w:
        w.alice.crypto.directory.clock = clock  # her device lives through the same hour
        await stop_sequencer()
        clock.advance(EVERY + 1)
        await w.integrate()
        await w.integrate()
        honest = await w.alice.verify_log()
        assert honest.complete_through is not None
        assert honest.counted_at_ms is not None and honest.counted_at_ms <= clock.now_ms()
        state = tmp_path / "audit.json"
        assert (await audit_epochs(LogClient(w.http), await _checkpoint(w.http), state)).epochs

        monkeypatch.setattr(keydir_service.KeyDirService, "_count_due", lambda *a: False)
        (hidden,) = await read_profile(w, 1)
        async with w.services.db.write() as conn:  # and leaves it out of her history
            await conn.execute(
                update(tlog_entries)
                .where(tlog_entries.c.idx == hidden)
                .values(subject=None, opening=None)
            )
        clock.advance(EVERY + 10)  # late, but within the slack: not yet evidence
        await w.integrate()
        late = await w.alice.verify_log()
        assert late.complete_through == honest.complete_through
        clock.advance(3600)  # an hour of heartbeat epochs with the count frozen
        await w.integrate()
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_count_late"
        assert f"every {EVERY} s" in failed.value.message
        # and the auditor, who reads every epoch: from its last state and from scratch
        checkpoint = await _checkpoint(w.http)
        for resumed in (state, None):
            with pytest.raises(KeyDirTransitionInvalid) as refused:
                await audit_epochs(LogClient(w.http), checkpoint, resumed, clock=clock)
            assert "keeps an old count" in refused.value.message
            assert f"every {EVERY} s" in refused.value.message


async def test_an_answer_that_hides_when_it_counted_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server cannot pass the count check by showing other epochs than the ones that set
    ``through``, nor epochs outside its checkpoint, nor none at all."""
    clock = FakeClock(SystemClock().now_ms())
    settings = {"keydir_log_seconds": EVERY, "keydir_heartbeat_seconds": 10}
    async with partnered(tmp_path, clock=clock, **settings) as w:
        await stop_sequencer()
        clock.advance(EVERY + 1)
        await w.integrate()
        await read_profile(w, 1)
        clock.advance(EVERY + 1)
        await w.integrate()  # this epoch counts the read
        clock.advance(11)
        await w.integrate()  # a heartbeat within the interval: it keeps the count
        path = "/v1/me/keydir/log"
        seen: list[Any] = []
        w.tamper.rewrites[path] = lambda body: seen.append(orjson.loads(body)) or body
        assert (await w.alice.verify_log()).counted_at_ms is not None
        honest = seen[-1]
        assert [c["epoch"] for c in honest["counted"]] == [honest["epoch"] - 2, honest["epoch"] - 1]

        def answer(change: Any) -> Any:
            def rewrite(body: bytes) -> bytes:
                doc = orjson.loads(body)
                change(doc)
                return orjson.dumps(doc)

            return rewrite

        def bad_proof(doc: dict[str, Any]) -> None:
            doc["counted"][1]["inclusion"] = doc["counted"][0]["inclusion"]

        cases: list[tuple[Any, str]] = [
            (lambda doc: doc.pop("counted"), "keydir_invalid_proof"),
            (lambda doc: doc["counted"].pop(0), "keydir_invalid_proof"),  # the one before
            (lambda doc: doc["counted"].pop(1), "keydir_invalid_proof"),  # the first
            (lambda doc: doc.update(counted=[]), "keydir_invalid_proof"),
            (lambda doc: doc["counted"].reverse(), "keydir_invalid_proof"),
            (bad_proof, "keydir_not_in_log"),
        ]
        for change, code in cases:
            w.tamper.rewrites[path] = answer(change)
            with pytest.raises(DirectoryVerificationFailed) as failed:
                await w.alice.verify_log()
            assert failed.value.code == code, failed.value.message
        del w.tamper.rewrites[path]
        assert (await w.alice.verify_log()).complete_through is not None
