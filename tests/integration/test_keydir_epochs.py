"""When the key directory publishes, and what the log carries instead of device entries."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson
import pytest

from clearpost.client import Client
from clearpost.core.keydir.commit import label_input
from clearpost.core.keydir.vrf import VrfSecretKey
from clearpost.core.keydir_labels import DEVICES, label
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import api
from tests.unit.client.partners import FAST

ALICE = "@alice:clearpost.localhost"


async def _epochs(http: httpx.AsyncClient) -> list[dict[str, object]]:
    out, n = [], 0
    while (r := await http.get(f"/v1/keydir/epochs/{n}")).status_code == 200:
        out.append(r.json())
        n += 1
    assert r.status_code == 404 and r.json()["code"] == "epoch_not_found"
    return out


async def _log_types(http: httpx.AsyncClient) -> list[str]:
    size = int((await http.get("/v1/log/checkpoint")).text.splitlines()[1])
    r = await http.get("/v1/log/entries", params={"start": 0, "end": size})
    return [orjson.loads(base64.b64decode(e))["type"] for e in r.json()["entries"]]


async def test_no_epoch_without_changes_before_the_heartbeat(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        await api.user(http, "alice")
        log = app.state.services.log
        await log.integrate_once()
        before = await _epochs(http)
        await log.integrate_once()
        await log.integrate_once()
        assert await _epochs(http) == before
        # device keys are committed in the directory, not logged with the device in them
        types = await _log_types(http)
        assert "device" not in types and "keydir" in types


async def test_a_heartbeat_epoch_without_changes(tmp_path: Path) -> None:
    app = create_app(fast_settings(tmp_path, keydir_heartbeat_seconds=0))
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        log = app.state.services.log
        await log.integrate_once()
        before = await _epochs(http)
        await log.integrate_once()
        after = await _epochs(http)
        # at least the step above published one (the background sequencer may add more)
        assert len(after) > len(before)
        for e in after[len(before) :]:
            assert e["inserted"] == [] and e["root"] == before[-1]["root"]


async def test_the_tree_is_rebuilt_from_stored_leaves_at_start(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        alice = await api.user(http, "alice")
        first = (await http.get(f"/v1/keydir/devices/{ALICE}", headers=alice.headers)).json()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        assert app.state.services.keydir._tree_epoch == first["epoch"]
        again = (await http.get(f"/v1/keydir/devices/{ALICE}", headers=alice.headers)).json()
        assert again["present"][0]["commitment"] == first["present"][0]["commitment"]


async def test_a_name_registered_again_after_erasure_continues_its_labels(
    tmp_path: Path,
) -> None:
    """The erased account's values and openings go, its leaves stay; a new account of the
    same name gets the next versions (the old ones' VRF indexes are taken) and verifies."""
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        services = app.state.services
        bob = await api.user(http, "bob")
        await api.user(http, "alice")
        await services.deletion.delete(ALICE)
        await services.log.integrate_once()
        r = await http.get(f"/v1/keydir/devices/{ALICE}", headers=bob.headers)
        assert r.status_code == 404 and r.json()["code"] == "user_not_found"
        await services.keydir.wait_published(ALICE)
        again = await Client.register(
            http,
            "alice",
            api.PASSWORD,
            store_path=tmp_path / "a.store",
            passphrase="p",
            kdf=FAST,
            stream=False,
        )
        found = await again.crypto.directory.history()
        # the erased account's versions (its device, then perhaps none) are shown unopened
        assert found.version is not None and found.version >= 1
        assert list(found.values) == [found.version]
        assert await again.crypto.directory.monitor() == []
        seen = await again.crypto.directory.devices(ALICE)
        assert [d["device_id"] for d in seen] == [again.device_id]
        await again.close()


async def test_a_new_accounts_first_version_is_proved_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finding a new label's first free version proves version 0 (its leaf may be an erased
    account's); publishing it takes that proof instead of making it again. At 10,000 new
    accounts an epoch that second VRF proof was a third of the epoch's time."""
    proved: list[bytes] = []
    prove = VrfSecretKey.prove

    def counted(key: VrfSecretKey, alpha: bytes) -> bytes:
        proved.append(bytes(alpha))
        return prove(key, alpha)

    monkeypatch.setattr(VrfSecretKey, "prove", counted)
    app = create_app(fast_settings(tmp_path))
    async with app.router.lifespan_context(app):
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        alice = await api.user(http, "alice")
        await app.state.services.log.integrate_once()
        found = (await http.get(f"/v1/keydir/devices/{ALICE}", headers=alice.headers)).json()
        assert [v["version"] for v in found["present"]] == [0]
        assert proved.count(label_input(label(DEVICES, ALICE), 0)) == 1
