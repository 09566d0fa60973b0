"""The SDK against the app in-process (fast): store handling, rotation, keys, retries."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path

import httpx
import pytest

from clearpost.client import (
    Client,
    ClientError,
    KdfParams,
    MessageEvent,
    MessageState,
    WrongPassphrase,
)
from clearpost.client.olm import ONE_TIME_KEY_TARGET
from clearpost.core.clock import FakeClock, SystemClock
from tests.support import api

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSWORD = "correct horse battery"


async def register(
    http: httpx.AsyncClient, tmp_path: Path, name: str, clock: FakeClock | None = None
) -> Client:
    return await Client.register(
        http,
        name,
        PASSWORD,
        store_path=tmp_path / f"{name}.store",
        passphrase=f"{name} pass",
        kdf=FAST,
        clock=clock,
        stream=False,
    )


async def test_a_copied_store_keeps_working_and_a_wrong_passphrase_fails(
    app_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    alice, bob = (
        await register(app_client, tmp_path, "alice"),
        await register(app_client, tmp_path, "bob"),
    )
    conv = await alice.direct("@bob")
    await alice.send(conv, "before the move")
    await bob.sync()
    await bob.close()

    with pytest.raises(WrongPassphrase):
        await Client.open(app_client, store_path=tmp_path / "bob.store", passphrase="bob pas")

    moved = tmp_path / "elsewhere" / "renamed.db"
    moved.parent.mkdir()
    shutil.copy(tmp_path / "bob.store", moved)
    bob = await Client.open(app_client, store_path=moved, passphrase="bob pass", stream=False)
    assert [m.text for m in bob.cached_history(conv)] == ["before the move"]
    await alice.send(conv, "after the move")
    assert [m.text for m in await bob.history(conv)] == ["before the move", "after the move"]
    await alice.close()
    await bob.close()


async def test_sessions_rotate_after_100_messages_and_after_a_week(
    app_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    clock = FakeClock(SystemClock().now_ms())
    alice = await register(app_client, tmp_path, "alice", clock)
    # the fake week is the session's age only: the server's epochs keep the real time,
    # which a device a week on would call stale
    alice.crypto.directory.clock = SystemClock()
    bob = await register(app_client, tmp_path, "bob")
    conv = await alice.direct("@bob")
    sessions = [(await alice.send(conv, f"m{i}")).session_id for i in range(101)]
    assert len(set(sessions[:100])) == 1 and sessions[100] != sessions[99]
    clock.advance(6 * 24 * 3600)
    assert (await alice.send(conv, "six days later")).session_id == sessions[100]
    clock.advance(24 * 3600)
    week = (await alice.send(conv, "a week later")).session_id
    assert week not in sessions
    texts = [m.text for m in await bob.history(conv, limit=200)]
    assert texts[-3:] == ["m100", "six days later", "a week later"] and len(texts) == 103
    await alice.close()
    await bob.close()


async def test_one_time_keys_are_topped_up_and_a_used_fallback_replaced(
    app_client: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    alice, bob = (
        await register(app_client, tmp_path, "alice"),
        await register(app_client, tmp_path, "bob"),
    )
    first = await bob.transport.sync(bob.store.cursor)
    assert first["device_one_time_keys_count"] == {"signed_curve25519": ONE_TIME_KEY_TARGET}
    assert first["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # one account may claim 10 keys of one device a minute, so several drain Bob's keys
    claimers = [
        await api.user(app_client, f"drainer{i}") for i in range(ONE_TIME_KEY_TARGET // 10 + 1)
    ]
    claims = []
    for i in range(ONE_TIME_KEY_TARGET + 1):
        r = await app_client.post(
            "/v1/keys/claim",
            json={"one_time_keys": {bob.user_id: {bob.device_id: "signed_curve25519"}}},
            headers=claimers[i // 10].headers,
        )
        assert r.status_code == 200, r.text
        ((_, key),) = r.json()["one_time_keys"][bob.user_id][bob.device_id].items()
        claims.append(key)
    assert claims[-1]["fallback"] is True
    assert not any("fallback" in c for c in claims[:-1])
    drained = await bob.transport.sync(bob.store.cursor)
    assert drained["device_one_time_keys_count"] == {"signed_curve25519": 0}
    assert drained["device_unused_fallback_key_types"] == []

    await bob.sync()  # tops up and rotates the fallback key
    after = await bob.transport.sync(bob.store.cursor)
    assert after["device_one_time_keys_count"] == {"signed_curve25519": ONE_TIME_KEY_TARGET}
    assert after["device_unused_fallback_key_types"] == ["signed_curve25519"]
    # and messaging still works (Alice claims one of the new keys)
    conv = await alice.direct("@bob")
    await alice.send(conv, "after the top-up")
    assert [m.text for m in await bob.history(conv)] == ["after the top-up"]
    await alice.close()
    await bob.close()


class LoseFirstResponse(httpx.AsyncBaseTransport):
    """Delivers the first matching request to the server, then loses its response."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path_part: str) -> None:
        self.inner, self.path_part, self.lost = inner, path_part, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "PUT" and self.path_part in request.url.path and not self.lost:
            self.lost += 1
            await response.aread()
            raise httpx.ReadError("the connection dropped", request=request)
        return response


async def test_a_send_whose_response_is_lost_is_retried_once(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    app = app_client.app  # type: ignore[attr-defined]
    flaky = LoseFirstResponse(httpx.ASGITransport(app=app), "/messages/")
    async with httpx.AsyncClient(transport=flaky, base_url="http://test") as http:
        alice = await register(http, tmp_path, "alice")
        bob = await register(app_client, tmp_path, "bob")
        conv = await alice.direct("@bob")
        sent = await alice.send(conv, "exactly once")
        assert flaky.lost == 1 and sent.seq == 1
        history = await bob.history(conv)
        assert [(m.seq, m.text) for m in history] == [(1, "exactly once")]
        await alice.close()
        await bob.close()


async def test_server_problems_become_typed_errors(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice = await register(app_client, tmp_path, "alice")
    with pytest.raises(ClientError) as caught:
        await alice.send("c_" + "A" * 22, "nowhere")
    assert caught.value.code == "conversation_not_found" and caught.value.status == 404
    with pytest.raises(ClientError) as caught:
        await alice.direct("@nobody")  # short for @nobody:<this server>
    assert caught.value.code == "user_not_found"
    with pytest.raises(ClientError) as caught:
        await register(app_client, tmp_path / "again", "alice")
    assert caught.value.code == "username_taken" and caught.value.status == 409
    assert not (tmp_path / "again" / "alice.store").exists()
    await alice.close()


@pytest.mark.parametrize("clean", [False, True], ids=["after-a-crash", "after-a-clean-close"])
async def test_outbound_sessions_after_a_restart(
    app_client: httpx.AsyncClient, tmp_path: Path, clean: bool
) -> None:
    """After a crash the outbound session is never reused (its saved ratchet may be behind
    what was sent); after a clean close it continues from where it stopped."""
    alice, bob = (
        await register(app_client, tmp_path, "alice"),
        await register(app_client, tmp_path, "bob"),
    )
    conv = await alice.direct("@bob")
    first = await alice.send(conv, "one")
    second = await alice.send(conv, "two")
    assert first.session_id == second.session_id
    alice.crypto.commit()  # an ordinary commit does not save the ratchet; a clean close does
    if clean:
        await alice.close()
    else:
        alice.store._conn.close()  # the process dies
    alice = await Client.open(
        app_client, store_path=tmp_path / "alice.store", passphrase="alice pass"
    )
    third = await alice.send(conv, "three")
    assert (third.session_id == first.session_id) is clean  # continued at index 2, or new
    history = await bob.history(conv)
    assert [(m.text, m.state) for m in history] == [
        ("one", MessageState.DECRYPTED),
        ("two", MessageState.DECRYPTED),
        ("three", MessageState.DECRYPTED),
    ]
    await alice.close()
    await bob.close()


async def test_listen_by_long_poll_delivers_live(
    app_client: httpx.AsyncClient, tmp_path: Path
) -> None:
    alice, bob = (
        await register(app_client, tmp_path, "alice"),
        await register(app_client, tmp_path, "bob"),
    )
    conv = await alice.direct("@bob")

    async def first_message() -> str:
        events = bob.listen(stream=False, timeout_ms=5_000)
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, MessageEvent):
                    return event.message.text
        raise AssertionError("listen() ended")

    waiting = asyncio.create_task(first_message())
    await asyncio.sleep(0.2)
    await alice.send(conv, "are you there?")
    assert await asyncio.wait_for(waiting, 10) == "are you there?"
    await alice.close()
    await bob.close()
