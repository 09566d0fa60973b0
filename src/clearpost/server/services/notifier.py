"""Wake-ups for waiting syncs and streams.

A writer calls ``publish(users)`` after commit; on PostgreSQL the same signal also
arrives from every other server process through LISTEN/NOTIFY (see
``clearpost.storage.listener``), so a message sent through one process wakes a sync
waiting on another without any polling.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable


class Notifier:
    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)

    def publish(self, users: Iterable[str] | None) -> None:
        """Wake the waiters of ``users`` (everyone if None)."""
        targets = list(self._waiters) if users is None else users
        for user in targets:
            for event in self._waiters.get(user, ()):
                event.set()

    def waiting(self) -> int:
        """How many syncs and streams of this process are waiting."""
        return sum(len(events) for events in self._waiters.values())

    def subscribe(self, user_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[user_id].add(event)
        return event

    def unsubscribe(self, user_id: str, event: asyncio.Event) -> None:
        waiters = self._waiters.get(user_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del self._waiters[user_id]
