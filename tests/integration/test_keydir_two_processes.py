"""Two server processes on one PostgreSQL database publish one key directory: only the
sequencer publishes (in its fenced step), epochs follow each other without a gap, and a
device registered through one process is proven by the other, which brings its tree up to
each new epoch by inserting that epoch's leaves (not by rebuilding it from every leaf)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest

from clearpost.audit.http import LogClient
from clearpost.audit.keydir import audit_epochs
from clearpost.core.keydir.proofs import Bundle, check_lookup
from clearpost.core.keydir_labels import parse_devices_value
from clearpost.core.tlog import Checkpoint
from clearpost.core.tlog.entries import decode_entry
from clearpost.core.tlog.note import parse_note_unverified
from tests.support import api
from tests.support.server import ServerProcess, start_server


@pytest.mark.postgres
def test_two_processes_publish_one_directory(tmp_path: Path, pg_url: str) -> None:
    key = {"CLEARPOST_LOG_KEY_FILE": str(tmp_path / "shared-log.key")}
    servers: list[ServerProcess] = []
    try:
        servers.append(start_server(tmp_path / "a", pg_url, key))
        servers.append(start_server(tmp_path / "b", pg_url, key))
        asyncio.run(_check([s.url for s in servers]))
        for s in servers:  # each caught up with the other's epochs without a rebuild
            assert s.log().count("key directory tree rebuilt") == 1, s.log()
    finally:
        for s in servers:
            s.stop()


async def _check(urls: list[str]) -> None:
    a, b = (httpx.AsyncClient(base_url=u, timeout=30) for u in urls)
    try:
        vrf = {(await c.get("/v1/keydir/key")).json()["vrf_public_key"] for c in (a, b)}
        assert len(vrf) == 1, "both processes prove under one VRF key"
        vrf_key = base64.b64decode(vrf.pop())
        for n in range(6):
            # the registration returns once its device is in an epoch; the other process
            # last proved at the epoch of the registration before, which has leaves too
            dev = await api.user((a, b)[n % 2], f"user{n}", otks=0)
            other = (b, a)[n % 2]  # asked of the process it did not register through
            r = await other.get(f"/v1/keydir/devices/{dev.user_id}", headers=dev.headers)
            assert r.status_code == 200, r.text
            answer = r.json()
            root = bytes.fromhex(decode_entry(base64.b64decode(answer["entry"]))["root"])
            version, value = check_lookup(vrf_key, root, Bundle.from_json(answer))
            assert version == 0
            assert [d["device_id"] for d in parse_devices_value(value)] == [dev.device_id]
        note = (await a.get("/v1/log/checkpoint")).text
        checkpoint = Checkpoint.parse(parse_note_unverified(note)[0])
        audited = await audit_epochs(LogClient(b), checkpoint)
        assert audited.last_epoch is not None and audited.epochs == audited.last_epoch + 1
    finally:
        await a.aclose()
        await b.aclose()
