"""Group concurrent requests into one database transaction.

While one batch is being written, new requests queue up; the next batch takes all of them.
Under load this turns many small commits into a few large ones; with one request in flight
it adds no waiting at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    def __init__(
        self, write: Callable[[list[T]], Awaitable[list[R]]], max_batch: int = 256
    ) -> None:
        self._write = write
        self._max = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if not self._running:
            self._running = True
            # kept: the event loop holds its tasks only weakly
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:  # the whole transaction failed: every caller hears it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._running = False
