"""``wait_event``: a service loop waiting on an event stops when cancelled, whenever the
cancellation comes (``asyncio.wait_for`` on Python 3.11 loses one that arrives as the event
is set: the server's shutdown then waited for its log sequencer forever)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clearpost.core.waiting import wait_event


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await wait_event(event, 5) is True


@pytest.mark.parametrize("steps", range(4))
async def test_a_loop_on_it_stops_when_cancelled_as_the_event_is_set(steps: int) -> None:
    event = asyncio.Event()

    async def service() -> None:  # the shape of the sequencer's and the scheduler's loops
        while True:
            await wait_event(event, 10)
            event.clear()

    task = asyncio.create_task(service())
    await asyncio.sleep(0.01)
    event.set()
    for _ in range(steps):  # let the wake-up get this far before the cancellation lands
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done and task.cancelled(), "the loop swallowed its cancellation"


async def test_shutdown_goes_on_without_a_task_that_will_not_stop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from clearpost.server.services import runtime

    monkeypatch.setattr(runtime, "STOP_SECONDS", 0.2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # the bug, on purpose
                await asyncio.sleep(10)

    async def polite() -> None:
        await asyncio.sleep(10)

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(polite())]
    await asyncio.sleep(0)
    await asyncio.wait_for(runtime._stop(tasks), 5)
    assert tasks[1].cancelled()
    assert "stubborn did not stop within" in caplog.text
    release.set()
    tasks[0].cancel()
    await asyncio.wait(tasks[:1], timeout=1)
