"""The key directory against a server that lies (issue 17): each test is one of the issue's
six attacks, made by a real database edit or by a server answer rewritten on the way to the
client (``Tamper``), and each must be caught by a client or the auditor."""

from __future__ import annotations

import base64
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, update

from clearpost.audit.auditor import audit_log
from clearpost.audit.errors import AuditFailure, ExitCode, KeyDirTransitionInvalid
from clearpost.audit.http import LogClient
from clearpost.audit.keydir import audit_epochs
from clearpost.client import Client
from clearpost.client.directory import DirectoryAlarm, DirectoryVerificationFailed
from clearpost.core.clock import SystemClock
from clearpost.core.keydir.tree import PrefixTree
from clearpost.core.keydir.vrf import VrfSecretKey
from clearpost.core.tlog import Checkpoint
from clearpost.core.tlog.note import parse_note_unverified
from clearpost.server.http.app import create_app
from clearpost.server.services import keydir as keydir_service
from clearpost.storage.schema import devices, keydir_dirty, tlog_entries
from tests.conftest import fast_settings
from tests.support import api
from tests.support.devices import TestDevice
from tests.unit.client.partners import FAST, PASSWORD, Partnered, partnered
from tests.unit.client.test_log_verification import settled

ALICE = "@alice:clearpost.localhost"


async def second_device(w: Partnered, tmp_path: Path, name: str) -> Client:
    return await Client.login(
        w.http,
        name,
        PASSWORD,
        store_path=tmp_path / f"{name}-2.store",
        passphrase="second",
        kdf=FAST,
        stream=False,
    )


def ghost(user_id: str) -> TestDevice:
    """A device with validly self-signed keys that its owner never made."""
    return TestDevice(user_id, "GHOSTDEVICE", "no-token")


async def plant(w: Partnered, planted: TestDevice) -> None:
    """The server adds ``planted`` to Alice's account: a row and its keys, committed in the
    next epoch like any device."""
    async with w.services.db.write() as conn:
        await conn.execute(
            insert(devices).values(
                user_id=ALICE,
                device_id=planted.device_id,
                token_hash=planted.device_id.encode().hex().ljust(64, "0"),
                created_at=1,
                curve25519=planted.curve,
                ed25519=planted.account.ed25519_key.to_base64(),
                device_keys=orjson.dumps(planted.device_keys()).decode(),
            )
        )
        await conn.execute(insert(keydir_dirty).values(user_id=ALICE, since=1))


async def test_1_a_device_added_through_the_directory_alarms_alice(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        phone = await second_device(w, tmp_path, "alice")
        phone.crypto.directory.monitor_every_ms = 0  # check at every sync
        assert await phone.sync() == [] or True
        assert phone.crypto.directory.alarms == []
        # the server adds a device to Alice's account: a row and its keys, committed in
        # the next epoch like any device
        planted = ghost(ALICE)
        await plant(w, planted)
        await w.services.keydir.wait_published(ALICE)
        events = await phone.sync()
        alarms = [e for e in events if isinstance(e, DirectoryAlarm)]
        assert len(alarms) == 1, events
        assert alarms[0].added == ("GHOSTDEVICE",)
        assert "GHOSTDEVICE" in alarms[0].describe()
        assert "did not make" in alarms[0].describe()
        await phone.close()


async def test_1b_a_device_the_user_adds_is_reported_too_but_own_keys_are_not(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        w.alice.crypto.directory.monitor_every_ms = 0
        await w.alice.sync()
        assert w.alice.crypto.directory.alarms == []  # its own registration: no alarm
        phone = await second_device(w, tmp_path, "alice")
        events = await w.alice.sync()
        alarms = [e for e in events if isinstance(e, DirectoryAlarm)]
        assert [a.added for a in alarms] == [(phone.device_id,)]
        await phone.close()


async def test_1d_a_device_asks_only_for_versions_after_those_it_checked(
    tmp_path: Path,
) -> None:
    """Monitoring reads the versions from the last one it checked, not the whole history,
    and still alarms for one it did not make."""
    async with partnered(tmp_path) as w:
        phone = await second_device(w, tmp_path, "alice")
        (tmp_path / "tablet").mkdir()
        tablet = await second_device(w, tmp_path / "tablet", "alice")
        directory = phone.crypto.directory
        assert [a.added for a in await directory.monitor()] == [(tablet.device_id,)]
        full = (await directory.history()).values
        assert sorted(full) == [0, 1, 2]
        before = directory.bytes_read
        assert await directory.monitor() == []
        read = directory.bytes_read - before
        before = directory.bytes_read
        await directory.history()
        assert read < directory.bytes_read - before  # less than the whole history
        planted = ghost(ALICE)
        await plant(w, planted)
        await w.services.keydir.wait_published(ALICE)
        alarms = await directory.monitor()
        assert [a.added for a in alarms] == [("GHOSTDEVICE",)]
        for bad in ("-1", "4294967296", "x"):
            got = await w.http.get(
                f"/v1/me/keydir/devices?since={bad}", headers=phone.transport.auth_headers()
            )
            assert got.status_code == 400 and got.json()["code"] == "invalid_parameter", bad
        await phone.close()
        await tablet.close()


async def test_1c_versions_skipped_ahead_for_bob_fail_alices_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server adds Alice's ghost as versions 3 and 4 of her label (she made 0 and 1),
    skipping 2, gives Bob a valid lookup of version 4 with the ghost, and shows Alice's device
    only versions 0 and 1. Her check must fail: her history shows 3 absent (the ladder of
    her version 1), and the tree holds it."""
    async with partnered(tmp_path) as w:
        phone = await second_device(w, tmp_path, "alice")
        assert await phone.crypto.directory.monitor() == []
        keydir = w.services.keydir
        own = f"devices:{ALICE}"
        honest_new, honest_anchor = keydir._new_versions, keydir.store.anchor

        def skip_ahead(*args: Any) -> list[tuple[bytes, int, bytes]]:
            out = []
            for lbl, version, value in honest_new(*args):
                if lbl.decode() == own:
                    out += [(lbl, version + 1, value), (lbl, version + 2, value)]
                else:
                    out.append((lbl, version, value))
            return out

        monkeypatch.setattr(keydir, "_new_versions", skip_ahead)
        planted = ghost(ALICE)
        await plant(w, planted)
        await keydir.wait_published(ALICE)
        # Bob's lookup is valid and shows the ghost
        seen = await w.bob.crypto.directory.lookup(ALICE)
        assert seen.version == 4
        assert planted.device_id in {
            d["device_id"] for d in await w.bob.crypto.directory.devices(ALICE)
        }

        # to Alice's devices, the server shows only what she made
        async def only_hers(lbl: str) -> Any:
            epoch, checkpoint, rows = await honest_anchor(lbl)
            return epoch, checkpoint, [v for v in rows if lbl != own or v.version < 2]

        monkeypatch.setattr(keydir.store, "anchor", only_hers)
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await phone.crypto.directory.monitor()
        assert failed.value.code == "keydir_invalid_proof"
        await phone.close()


async def test_2_a_device_outside_the_directory_is_refused(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        planted = ghost(ALICE)

        def add_ghost(body: bytes) -> bytes:
            answer = orjson.loads(body)
            devices = answer["device_keys"].get(ALICE)
            if devices is not None:
                devices[planted.device_id] = planted.device_keys()
            return orjson.dumps(answer)

        w.tamper.rewrites["/v1/keys/query"] = add_ghost
        conv = await w.bob.direct(ALICE)
        await w.bob.send(conv, "for Alice's devices only")
        known = w.bob.crypto.devices.known(ALICE)
        assert w.alice.device_id in known
        assert planted.device_id not in known
        rows = w.bob.store.query(
            "SELECT status FROM devices WHERE user_id = ? AND device_id = ?",
            (ALICE, planted.device_id),
        )
        assert rows == [("invalid",)]
        # the message still reaches Alice's real device
        await w.alice.sync()
        history = await w.alice.history(conv)
        assert [m.text for m in history][-1] == "for Alice's devices only"


async def test_2b_the_refusal_names_the_device_and_the_directory(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        planted = ghost(ALICE)
        entries = [{"device_id": planted.device_id, "device_keys": planted.device_keys()}]
        refused = await w.bob.crypto.directory.refuse_unlisted(ALICE, entries)
        assert set(refused) == {planted.device_id}
        assert "not in the key directory" in refused[planted.device_id]


async def test_3_an_older_version_of_alices_devices_is_detected(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        path = f"/v1/keydir/devices/{ALICE}"
        old = await w.bob.transport.request("GET", path)
        assert len(await w.bob.crypto.directory.devices(ALICE)) == 1
        phone = await second_device(w, tmp_path, "alice")
        assert len(await w.bob.crypto.directory.devices(ALICE)) == 2
        w.tamper.rewrites[path] = lambda _body: orjson.dumps(old)  # the older answer again
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await w.bob.crypto.directory.devices(ALICE)
        assert failed.value.code in ("keydir_rollback", "log_rollback")
        await phone.close()


async def test_3b_a_stale_epoch_is_refused_by_a_device_that_never_looked(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path, keydir_heartbeat_seconds=1) as w:
        path = f"/v1/keydir/devices/{ALICE}"
        old = await w.carol.transport.request("GET", path)
        entry = orjson.loads(base64.b64decode(old["entry"]))

        class Later:
            def now_ms(self) -> int:
                return int(entry["time"]) + 600_000  # ten minutes on: past 2 s + 60 s

        fresh = await Client.login(
            w.http,
            "bob",
            PASSWORD,
            store_path=tmp_path / "bob-late.store",
            passphrase="x",
            kdf=FAST,
            stream=False,
        )
        fresh.crypto.directory.clock = Later()  # type: ignore[assignment]
        fresh.store.set_meta("keydir_epoch", b"0")
        # (``w.http`` does not pass through ``w.tamper``: the answer is the server's latest,
        # and by this device's clock it is as old as the first one, past the heartbeat; the
        # old answer itself, replayed, fails earlier: its checkpoint is older than the one
        # this device verified at its first sync, ``log_rollback``)
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await fresh.crypto.directory.devices(ALICE)
        assert failed.value.code == "keydir_stale", (failed.value.code, failed.value.message)
        await fresh.close()


async def test_3d_a_heartbeat_answered_to_one_device_does_not_loosen_its_check(
    tmp_path: Path,
) -> None:
    """A server that tells one device its heartbeat is a day (within what any server may
    say) would have that device accept a directory frozen a day: the device judges an
    epoch by the heartbeat the epoch states in the log, the same for everyone."""
    async with partnered(tmp_path, keydir_heartbeat_seconds=1) as w:
        old = await w.carol.transport.request("GET", f"/v1/keydir/devices/{ALICE}")
        entry = orjson.loads(base64.b64decode(old["entry"]))
        assert entry["heartbeat_seconds"] == 1

        class Later:
            def now_ms(self) -> int:
                return int(entry["time"]) + 600_000  # ten minutes on: past 2 s + 60 s

        def a_day(body: bytes) -> bytes:
            doc = orjson.loads(body)
            doc["heartbeat_seconds"] = 86_400
            return orjson.dumps(doc)

        w.tamper.rewrites["/v1/keydir/key"] = a_day
        async with httpx.AsyncClient(transport=w.tamper, base_url="http://test") as via:
            fresh = await _device_via(via, tmp_path, "bob-late")
            fresh.crypto.directory.clock = Later()  # type: ignore[assignment]
            with pytest.raises(DirectoryVerificationFailed) as failed:
                await fresh.crypto.directory.devices(ALICE)
            assert failed.value.code == "keydir_stale", failed.value.message
            await fresh.close()


async def test_3e_a_vrf_key_the_log_does_not_state_is_refused(tmp_path: Path) -> None:
    """A server could hand one new device a VRF key of its own and answer that device's
    lookups under labels no account's owner checks, with ghost devices only it sees. Every
    epoch states the key in the signed log: a device refuses another one (here at its first
    check of its own account, as it logs in), and takes the logged key once the server
    stops lying."""
    async with partnered(tmp_path) as w:
        other = base64.b64encode(VrfSecretKey.from_seed(b"\x07" * 32).public_key).decode()

        def another_key(body: bytes) -> bytes:
            doc = orjson.loads(body)
            doc["vrf_public_key"] = other
            return orjson.dumps(doc)

        w.tamper.rewrites["/v1/keydir/key"] = another_key
        async with httpx.AsyncClient(transport=w.tamper, base_url="http://test") as via:
            with pytest.raises(DirectoryVerificationFailed) as failed:
                await _device_via(via, tmp_path, "bob-new")
            assert failed.value.code == "keydir_key_not_logged", failed.value.message
            assert f"was handed {other}" in failed.value.message
            del w.tamper.rewrites["/v1/keydir/key"]
            fresh = await _device_via(via, tmp_path, "bob-newer")
            assert len(await fresh.crypto.directory.devices(ALICE)) == 1
            logged = (await w.http.get("/v1/keydir/key")).json()["vrf_public_key"]
            assert fresh.store.get_meta("keydir_vrf_key") == base64.b64decode(logged)
            await fresh.close()


async def _device_via(via: httpx.AsyncClient, tmp_path: Path, name: str) -> Client:
    """A new device of Bob's whose requests go through ``via``."""
    return await Client.login(
        via,
        "bob",
        PASSWORD,
        store_path=tmp_path / f"{name}.store",
        passphrase="x",
        kdf=FAST,
        stream=False,
    )


async def test_5_an_access_left_out_of_alices_history_fails_verification(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        await w.integrate()
        await w.integrate()
        log = await w.alice.verify_log()
        assert log.complete_through is not None
        accesses = [
            e.index for e in log.entries if e.type == "access" and e.index < log.complete_through
        ]
        assert accesses
        async with w.services.db.write() as conn:  # the server "forgets" one is Alice's
            await conn.execute(
                update(tlog_entries)
                .where(tlog_entries.c.idx == accesses[0])
                .values(subject=None, opening=None)
            )
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_incomplete"
        assert "left 1 out" in failed.value.message


async def test_6_an_epoch_that_changes_an_existing_version_is_refused(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    state = tmp_path / "audit.json"
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        await api.user(http, "alice")
        await api.user(http, "bob")
        services = app.state.services
        await services.log.integrate_once()
        checkpoint = await _checkpoint(http)
        first = await audit_epochs(LogClient(http), checkpoint, state)
        assert first.epochs >= 1
    # the operator rewrites Alice's version 0 in place, and makes the stored root agree
    db = sqlite3.connect(settings.data_dir / "clearpost.db")
    leaves = db.execute("SELECT idx, commitment FROM keydir_leaves").fetchall()
    target = db.execute(
        f"SELECT idx FROM keydir_versions WHERE label = 'devices:{ALICE}' AND version = 0"
    ).fetchone()[0]
    changed = [(bytes(i), b"\x07" * 32 if i == target else bytes(c)) for i, c in leaves]
    db.execute("UPDATE keydir_leaves SET commitment = ? WHERE idx = ?", (b"\x07" * 32, target))
    root = PrefixTree.from_leaves(changed).root()
    db.execute(
        "UPDATE keydir_epochs SET root = ? WHERE epoch = (SELECT max(epoch) FROM keydir_epochs)",
        (root,),
    )
    db.commit()
    db.close()
    app = create_app(settings)
    async with app.router.lifespan_context(app):  # restarted: the tree rebuilt from the rows
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        await api.user(http, "carol")  # a change: the next epoch builds on the edited tree
        await app.state.services.log.integrate_once()
        checkpoint = await _checkpoint(http)
        with pytest.raises(KeyDirTransitionInvalid) as failed:
            await audit_epochs(LogClient(http), checkpoint, state)
        assert "does not follow" in failed.value.message


async def audit_refuses(http: httpx.AsyncClient, state: Path, words: str) -> None:
    """The auditor refuses the log's epochs, saying ``words``: a run that resumes from the
    state file ``state`` and a fresh one."""
    checkpoint = await _checkpoint(http)
    for resumed in (state, None):
        with pytest.raises(KeyDirTransitionInvalid) as failed:
            await audit_epochs(LogClient(http), checkpoint, resumed)
        assert words in failed.value.message, failed.value.message


async def _checkpoint(http: httpx.AsyncClient) -> Checkpoint:
    note = (await http.get("/v1/log/checkpoint")).text
    text, _ = parse_note_unverified(note)
    return Checkpoint.parse(text)


async def test_4_different_directory_states_are_caught_through_the_log(tmp_path: Path) -> None:
    """The server forks: Alice's clients talk to one copy of it, Bob's to another that shows
    a different device list for Alice. Both answers verify alone (each log is signed by the
    same key); the fork shows where views meet: the auditor that saw one log, and Bob's
    client once it has seen Alice's side."""
    real, fork = fast_settings(tmp_path / "real"), fast_settings(tmp_path / "fork")
    state = tmp_path / "audit.json"
    app = create_app(real)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        bob = await Client.register(
            http,
            "bob",
            PASSWORD,
            store_path=tmp_path / "bob.store",
            passphrase="b",
            kdf=FAST,
            stream=False,
        )
        await api.user(http, "alice")
        await app.state.services.log.integrate_once()
        assert len(await bob.crypto.directory.devices(ALICE)) == 1
        # the operator copies the database: from here on there are two histories
        fork.data_dir.mkdir(parents=True)
        for name in ("log.key", "report.key"):
            (fork.data_dir / name).write_bytes((real.data_dir / name).read_bytes())
        source = sqlite3.connect(real.data_dir / "clearpost.db")
        copy = sqlite3.connect(fork.data_dir / "clearpost.db")
        source.backup(copy)
        source.close()
        copy.close()
        await api.login(http, "alice")  # Alice's second device, on the real server
        await app.state.services.log.integrate_once()
        await audit_log(LogClient(http), state, tiles=False)  # the auditor sees this log
        real_view = await bob.crypto.directory.devices(ALICE)
        assert len(real_view) == 2
        await bob.close()
    forked = create_app(fork)
    async with forked.router.lifespan_context(forked):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=forked), base_url="http://t")
        await forked.state.services.log.integrate_once()
        # in the fork Alice still has one device: the split view Bob is shown
        bob_store = tmp_path / "bob-fork.store"
        fresh = await Client.register(
            http, "dave", PASSWORD, store_path=bob_store, passphrase="d", kdf=FAST, stream=False
        )
        assert len(await fresh.crypto.directory.devices(ALICE)) == 1  # verifies alone
        await fresh.close()
        # the auditor who audited the real log refuses the fork
        with pytest.raises(AuditFailure) as failed:
            await audit_log(LogClient(http), state, tiles=False)
        assert failed.value.exit_code in (ExitCode.FORK, ExitCode.ROLLBACK)
        # and Bob's own device, which verified the real log, refuses the fork's answer
        bob = await Client.open(
            http, store_path=tmp_path / "bob.store", passphrase="b", stream=False
        )
        with pytest.raises(DirectoryVerificationFailed) as refused:
            await bob.crypto.directory.devices(ALICE)
        assert refused.value.code == "log_inconsistent"
        assert "forked history" in refused.value.message
        await bob.close()


async def test_6b_an_epoch_that_takes_back_a_count_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that publishes an epoch whose ``through`` is below the last one (so entries
    once proven counted would no longer be) is refused by the auditor, from a fresh audit
    and from one that resumes from its state file."""
    state = tmp_path / "audit.json"
    async with partnered(tmp_path) as w:
        await settled(w)
        await w.integrate()
        honest = await audit_epochs(LogClient(w.http), await _checkpoint(w.http), state)
        assert honest.epochs >= 2
        # the lying server: its next count claims to stop at entry 1
        monkeypatch.setattr(keydir_service, "_first_people", lambda about, most, size: (about, 1))
        r = await w.streamco.get("http://test/v1/partner/me")
        assert r.status_code == 200, r.text
        await w.integrate()
        await w.integrate()
        await audit_refuses(w.http, state, "a count taken back")


class SteppedClock(SystemClock):
    """The system clock, stepped by ``offset_ms``."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


@contextlib.asynccontextmanager
async def audited(tmp_path: Path) -> AsyncIterator[tuple[Partnered, SteppedClock, Path]]:
    """The world, with a server clock a test can step, settled and audited once (honestly)
    into the state file it yields."""
    state = tmp_path / "audit.json"
    clock = SteppedClock()
    async with partnered(tmp_path, clock=clock) as w:
        await settled(w)
        await w.integrate()
        assert (await audit_epochs(LogClient(w.http), await _checkpoint(w.http), state)).epochs
        yield w, clock, state


async def test_6c_an_epoch_dated_back_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clients judge a directory's freshness and a count's age by its epochs' times, so a
    server that dates an epoch back could pass a stale view or a stopped count as on time.
    An honest server whose clock steps back an hour dates its next epoch as its last one,
    which the auditor takes; a server that dates one back is refused, from a fresh audit and
    from one that resumes from its state file."""
    async with audited(tmp_path) as (w, clock, state):
        keydir = w.services.keydir
        last = await keydir.store.latest_epoch()
        assert last is not None

        async def an_epoch(device_id: str) -> int:
            """A device change (an epoch whenever it comes); the new epoch's time. Not a
            client's: a client calls a directory dated an hour back stale, as it should."""
            await plant(w, TestDevice(ALICE, device_id, "no-token"))
            await w.integrate()
            await w.integrate()
            latest = await keydir.store.latest_epoch()
            assert latest is not None and latest.epoch > last.epoch
            return latest.created_at

        clock.offset_ms = -3_600_000
        assert await an_epoch("TABLETXXXX") == last.created_at  # stepped back: dated as the last
        assert (await audit_epochs(LogClient(w.http), await _checkpoint(w.http), state)).epochs
        # the lying server: its epochs take the clock's time, an hour back
        monkeypatch.setattr(keydir_service, "_epoch_time", lambda now, latest: now)
        last = await keydir.store.latest_epoch()
        assert last is not None
        assert await an_epoch("LAPTOPXXXX") < last.created_at
        await audit_refuses(w.http, state, "epochs are never dated back")


async def test_3f_an_epoch_dated_ahead_is_refused(tmp_path: Path) -> None:
    """An epoch dated a day ahead would pass for current for a day: the server could stop
    showing a device anything newer and the device would not see its view freeze. Devices
    refuse an epoch dated more than twice the heartbeat and a minute ahead of their clock,
    and so does the auditor."""
    async with audited(tmp_path) as (w, clock, state):
        clock.offset_ms = 86_400_000  # the server's clock, a day on
        await plant(w, TestDevice(ALICE, "TABLETXXXX", "no-token"))
        await w.integrate()
        await w.integrate()
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await w.carol.crypto.directory.devices(ALICE)
        assert failed.value.code == "keydir_dated_ahead", failed.value.message
        assert re.search(r"dated 86,[34]\d\d s ahead of this device's clock", failed.value.message)
        await audit_refuses(w.http, state, "ahead of this auditor's clock")


async def test_6d_an_epoch_that_states_another_vrf_key_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every epoch states the VRF key in the log, so a device cannot be handed its own; a
    server that switches the stated key (to hand it to new devices) is refused by the
    auditor, from a fresh audit and from one that resumes from its state file."""
    async with audited(tmp_path) as (w, _, state):
        honest = keydir_service.keydir_entry
        other = VrfSecretKey.from_seed(b"\x07" * 32).public_key
        monkeypatch.setattr(keydir_service, "keydir_entry", lambda *a: honest(*a[:-1], other))
        await plant(w, ghost(ALICE))
        await w.integrate()
        await w.integrate()
        await audit_refuses(w.http, state, "but the epochs before it stated")


async def test_3c_a_heartbeat_longer_than_any_server_may_claim_is_refused(
    tmp_path: Path,
) -> None:
    """A server that says it may go a year without an epoch would have its clients accept
    a directory frozen that long: a device refuses the claim."""
    async with partnered(tmp_path) as w:

        def a_year(body: bytes) -> bytes:
            doc = orjson.loads(body)
            doc["heartbeat_seconds"] = 365 * 86_400
            return orjson.dumps(doc)

        directory = w.carol.crypto.directory
        directory._heartbeat_ms = None  # as a device that has not asked for the key yet
        w.tamper.rewrites["/v1/keydir/key"] = a_year
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await directory.devices(ALICE)
        assert failed.value.code == "keydir_bad_response", failed.value.message
        assert "no server may wait more than 86,400 s" in failed.value.message
