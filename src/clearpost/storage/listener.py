"""PostgreSQL LISTEN for stream signals from every server process of one database.

One dedicated asyncpg connection per process. If it drops, it reconnects and then wakes
every waiter once, so a signal lost while disconnected costs at most one extra read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from clearpost.storage.db import asyncpg_dsn
from clearpost.storage.sql.stream import CHANNEL, DEVICE_CHANNEL, decode_device, decode_signal

log = logging.getLogger("clearpost.listener")

WakeFn = Callable[[list[str] | None], None]
ForgetFn = Callable[[tuple[str, str] | None], None]


class StreamListener:
    """``wake(users)`` on stream signals (None: everyone); ``forget((user, device))`` when a
    device changed (None: forget every cached device, e.g. after a reconnect)."""

    def __init__(self, url: str, wake: WakeFn, forget: ForgetFn) -> None:
        self._dsn = asyncpg_dsn(url)
        self._wake = wake
        self._forget = forget
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="clearpost-listener")
        async with asyncio.timeout(10):  # not wait_for: core/waiting.py says why
            await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _on_signal(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            _, users = decode_signal(payload)
        except (ValueError, KeyError, TypeError):
            users = None
        self._wake(users)

    def _on_device(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._forget(decode_device(payload))
        except (ValueError, TypeError):
            self._forget(None)

    async def _run(self) -> None:
        import asyncpg  # only PostgreSQL deployments pay for importing it

        delay = 0.1
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
                try:
                    await conn.add_listener(CHANNEL, self._on_signal)
                    await conn.add_listener(DEVICE_CHANNEL, self._on_device)
                    if self._ready.is_set():  # we may have missed signals while reconnecting
                        self._forget(None)
                        self._wake(None)
                    self._ready.set()
                    delay = 0.1
                    closed = asyncio.Event()
                    conn.add_termination_listener(lambda _c, ev=closed: ev.set())
                    await closed.wait()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("stream listener lost its connection (%s); reconnecting", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
