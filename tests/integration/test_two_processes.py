"""Two ``clearpost serve`` processes on one PostgreSQL database behave as one service."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import api
from tests.support.server import ServerProcess, start_server

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair(tmp_path: Path, pg_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    key = {"CLEARPOST_LOG_KEY_FILE": str(tmp_path / "shared-log.key")}
    a = start_server(tmp_path / "a", pg_url, key)
    try:
        b = start_server(tmp_path / "b", pg_url, key)
        try:
            yield a, b
        finally:
            b.stop()
    finally:
        a.stop()


async def test_a_message_sent_through_one_wakes_a_sync_on_the_other(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as ca,
        httpx.AsyncClient(base_url=b.url, timeout=30) as cb,
    ):
        alice = await api.user(ca, "alice")
        await api.register(ca, "bob")
        bob = await api.login(cb, "bob")  # bob's device lives on process B
        conv = await api.conversation(ca, alice, "direct", bob)
        cursor = str((await api.sync(cb, bob))["cursor"])
        latencies = []
        for i in range(20):
            waiting = asyncio.create_task(api.sync(cb, bob, cursor, timeout=10_000))
            await asyncio.sleep(0.05)  # the sync is parked on B before we send through A
            assert not waiting.done()
            started = time.perf_counter()
            r = await api.send(ca, alice, conv, f"m{i}".encode())
            assert r.status_code == 200
            got = await asyncio.wait_for(waiting, 10)
            latencies.append(time.perf_counter() - started)
            assert [m["seq"] for m in got["messages"]] == [i + 1]  # type: ignore[index]
            cursor = str(got["cursor"])
    median = statistics.median(latencies)
    print(
        f"cross-process delivery: median {median * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )
    # A 10 s long-poll that returns with the message proves a wake-up, not a timeout; the
    # median bounds it to the 100 ms (a polling loop would not be this regular).
    assert median < 0.1


async def test_logout_on_one_process_is_seen_by_the_other(
    pair: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = pair
    async with httpx.AsyncClient(base_url=a.url) as ca, httpx.AsyncClient(base_url=b.url) as cb:
        alice = await api.user(ca, "alice")
        assert (await cb.get("/v1/devices", headers=alice.headers)).status_code == 200
        assert (await ca.post("/v1/logout", headers=alice.headers)).status_code == 204
        # The other process hears of it through NOTIFY, a few milliseconds later (under a
        # loaded machine, more); its token cache believes an entry 5 s at most in any case.
        started = time.monotonic()
        while True:
            r = await cb.get("/v1/devices", headers=alice.headers)
            if r.status_code != 200 or time.monotonic() - started > 5.5:
                break
            await asyncio.sleep(0.02)
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
        print(f"logout seen by the other process after {time.monotonic() - started:.3f} s")


def _sequencer(*procs: ServerProcess) -> ServerProcess:
    for _ in range(100):
        for p in procs:
            if "now the log sequencer" in p.log():
                return p
        time.sleep(0.05)
    raise AssertionError("no process became the log sequencer")


async def _size(client: httpx.AsyncClient) -> int:
    return int((await client.get("/v1/log/checkpoint")).text.split("\n")[1])


async def test_exactly_one_sequencer_and_a_clean_handover(tmp_path: Path, pg_url: str) -> None:
    key = {"CLEARPOST_LOG_KEY_FILE": str(tmp_path / "shared-log.key")}
    a = start_server(tmp_path / "a", pg_url, key)
    try:
        b = start_server(tmp_path / "b", pg_url, key)
    except BaseException:
        a.stop()
        raise
    try:
        leader = _sequencer(a, b)
        other = b if leader is a else a
        assert "now the log sequencer" not in other.log()
        async with httpx.AsyncClient(base_url=other.url, timeout=30) as client:
            await api.user(client, "alice")  # one device entry
            deadline = time.monotonic() + 5
            while await _size(client) < 1:
                assert time.monotonic() < deadline, "entry not integrated within 5 s"
                await asyncio.sleep(0.05)
            leader.process.kill()  # dies without a goodbye: PostgreSQL frees its advisory lock
            leader.process.wait()
            await api.user(client, "bob")
            deadline = time.monotonic() + 10
            while await _size(client) < 2:
                assert time.monotonic() < deadline, "no process took over the sequencer"
                await asyncio.sleep(0.1)
            assert "now the log sequencer" in other.log()
    finally:
        a.stop()
        b.stop()


def test_a_process_with_another_log_key_refuses_to_start(tmp_path: Path, pg_url: str) -> None:
    a = start_server(tmp_path / "a", pg_url)
    try:
        with pytest.raises(RuntimeError, match=r"log_key_mismatch|same log key file"):
            start_server(tmp_path / "b", pg_url)
    finally:
        a.stop()
