"""Everything one sync needs, read in one transaction (one consistent snapshot, and on
SQLite one thread hop — see ``Database.run_read``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, select

from clearpost.storage.db import Database
from clearpost.storage.schema import memberships
from clearpost.storage.sql.events import EVENTS, event_rows
from clearpost.storage.sql.keys import counts_sync
from clearpost.storage.sql.messages import VISIBLE, StoredMessage
from clearpost.storage.sql.stream import CURRENT
from clearpost.storage.sql.todevice import HELD, PENDING, HeldMessage


@dataclass(slots=True)
class SyncRows:
    upto: int
    messages: list[StoredMessage] = field(default_factory=list)
    to_device: list[HeldMessage] = field(default_factory=list)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    one_time_keys: int = 0
    fallback_unused: bool = False
    peers: set[str] | None = None
    """Who shares a conversation with the user now; read only when an event in the window
    removed someone (their device lists are then "left" unless still shared)."""
    former: set[str] = field(default_factory=set)
    """Everyone who was ever in a conversation the user left or was removed from."""


def _position(conn: Connection, user_id: str, device_id: str, since: int) -> tuple[int, bool]:
    current = int(conn.execute(CURRENT).scalar_one() or 0)
    pending = conn.execute(PENDING, {"user_id": user_id, "device_id": device_id, "upto": since})
    return current, bool(pending.scalar())


def _read(
    conn: Connection, user_id: str, device_id: str, since: int | None, limit: int
) -> SyncRows:
    upto = int(conn.execute(CURRENT).scalar_one() or 0)
    rows = SyncRows(upto)
    rows.one_time_keys, rows.fallback_unused = counts_sync(conn, user_id, device_id)
    window = {"user_id": user_id, "since": since or 0, "upto": upto, "limit": limit + 1}
    held = conn.execute(HELD, {**window, "device_id": device_id})
    rows.to_device = [HeldMessage(*r) for r in held]
    if since is not None and since < upto:
        rows.messages = [StoredMessage(*r) for r in conn.execute(VISIBLE, window)]
        rows.events = event_rows(conn.execute(EVENTS, window))
        removals = [c for _, kind, c in rows.events if _removes(kind, c)]
        if removals:
            rows.peers = {r[0] for r in conn.execute(PEERS, {"user_id": user_id})} | {user_id}
        for content in removals:
            if content.get("user_id") == user_id:  # I left: whoever was in it with me
                ever = conn.execute(EVER, {"conversation_id": content.get("conversation_id")})
                rows.former |= {r[0] for r in ever} - {user_id}
    return rows


def _removes(kind: str, content: dict[str, Any]) -> bool:
    return kind == "membership" and content.get("change") in ("left", "removed")


EVER = (
    select(memberships.c.user_id)
    .where(memberships.c.conversation_id == bindparam("conversation_id"))
    .distinct()
)


_MINE = select(memberships.c.conversation_id).where(
    memberships.c.user_id == bindparam("user_id"), memberships.c.to_seq.is_(None)
)
PEERS = (
    select(memberships.c.user_id)
    .where(memberships.c.conversation_id.in_(_MINE), memberships.c.to_seq.is_(None))
    .distinct()
)
"""Users who share a current conversation with the user (``storage/sql/events.peers_of``)."""


class SyncView:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def position(self, user_id: str, device_id: str, since: int) -> tuple[int, bool]:
        """(the stream's current position, whether to-device messages up to ``since`` wait
        to be acknowledged)."""
        return await self.db.run_read(_position, user_id, device_id, since)

    async def read(self, user_id: str, device_id: str, since: int | None, limit: int) -> SyncRows:
        """Rows in ``(since, now]`` (``limit`` + 1 of each kind, so callers see truncation).
        Without ``since``: only the held to-device messages."""
        return await self.db.run_read(_read, user_id, device_id, since, limit)
