"""Waiting on an ``asyncio.Event`` with a time limit, without losing a cancellation.

``asyncio.wait_for(event.wait(), seconds)`` is the usual spelling, but on Python 3.11 it
returns normally when a cancellation arrives just as the event is set or the time runs
out (CPython gh-86296, fixed in 3.12 by rebuilding ``wait_for`` on ``asyncio.timeout``).
A service loop built on it then never stops: the server's shutdown cancelled the log
sequencer and waited for it forever. ``asyncio.timeout`` tells its own cancellation from
one that came from outside, so this one always lets the caller's cancellation through.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it is set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True
