"""Everything one sync needs, read in one transaction (one consistent snapshot, one
connection checkout)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clearpost.storage.db import Database
from clearpost.storage.sql import events, stream
from clearpost.storage.sql.keys import counts_in
from clearpost.storage.sql.messages import StoredMessage, visible_in
from clearpost.storage.sql.todevice import HeldMessage, held_in, pending_in


@dataclass(slots=True)
class SyncRows:
    upto: int
    messages: list[StoredMessage] = field(default_factory=list)
    to_device: list[HeldMessage] = field(default_factory=list)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    one_time_keys: int = 0
    fallback_used: bool = False


class SyncView:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def position(self, user_id: str, device_id: str, since: int) -> tuple[int, bool]:
        """(the stream's current position, whether to-device messages up to ``since`` wait
        to be acknowledged)."""
        async with self.db.read() as conn:
            return await stream.current(conn), await pending_in(conn, user_id, device_id, since)

    async def read(self, user_id: str, device_id: str, since: int | None, limit: int) -> SyncRows:
        """Rows in ``(since, now]`` (``limit`` + 1 of each kind, so callers see truncation).
        Without ``since``: only the held to-device messages."""
        async with self.db.read() as conn:
            upto = await stream.current(conn)
            rows = SyncRows(upto)
            rows.one_time_keys, rows.fallback_used = await counts_in(conn, user_id, device_id)
            rows.to_device = await held_in(conn, user_id, device_id, since or 0, upto, limit + 1)
            if since is not None and since < upto:
                rows.messages = await visible_in(conn, user_id, since, upto, limit + 1)
                rows.events = await events.read_events(conn, user_id, since, upto, limit + 1)
            return rows
