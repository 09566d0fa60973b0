"""Sync: everything new for one device after a cursor, waiting (long-poll) when nothing is.

A cursor is an opaque token for a position in the server's single ordered stream, so it
survives restarts and works on every server process of one database. Syncing with a
cursor acknowledges (and deletes) the to-device messages it already delivered.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.waiting import wait_event
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.messages import StoredMessage
from clearpost.storage.sql.syncview import SyncView
from clearpost.storage.sql.todevice import HeldMessage, ToDeviceStore

LIMIT = 200
_PREFIX = "cp1_"


def encode_cursor(pos: int) -> str:
    return _PREFIX + base64.urlsafe_b64encode(struct.pack(">Q", pos)).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        if not cursor.startswith(_PREFIX) or len(cursor) != len(_PREFIX) + 11:
            raise ValueError
        pos = int(struct.unpack(">Q", base64.urlsafe_b64decode(cursor[len(_PREFIX) :] + "="))[0])
        if pos >= 2**63:
            raise ValueError
        return pos
    except (ValueError, binascii.Error, struct.error) as exc:
        raise InvalidInput(
            "this sync cursor was not issued by this server", code="invalid_cursor"
        ) from exc


@dataclass(slots=True)
class SyncResult:
    cursor: str
    messages: list[StoredMessage] = field(default_factory=list)
    to_device: list[HeldMessage] = field(default_factory=list)
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    one_time_key_count: int = 0
    fallback_key_unused: bool = False
    changed: list[str] = field(default_factory=list)
    """Users whose device lists changed, or who now share a conversation with the caller."""
    left: list[str] = field(default_factory=list)
    """Users who no longer share any conversation with the caller."""

    @property
    def empty(self) -> bool:
        return not (self.messages or self.to_device or self.events or self.changed or self.left)


class SyncService:
    def __init__(self, view: SyncView, to_device: ToDeviceStore, notifier: Notifier) -> None:
        self.view, self.to_device, self.notifier = view, to_device, notifier
        self.draining = False
        """The server is shutting down: long polls answer now instead of waiting."""

    def drain(self) -> None:
        """Answer every waiting long poll at once, and every later one without waiting (the
        server is shutting down: its clients poll again, elsewhere or after the restart,
        instead of being cut off with an error when the grace period ends)."""
        self.draining = True
        self.notifier.publish(None)

    async def acknowledge(self, caller: Caller, cursor: str) -> int:
        """Delete this device's to-device payloads up to ``cursor``; returns its position."""
        since = decode_cursor(cursor)
        current, pending = await self.view.position(caller.user_id, caller.device_id, since)
        if since > current:  # refuse before acknowledging anything
            raise InvalidInput("this sync cursor is ahead of the server", code="invalid_cursor")
        if pending:
            await self.to_device.acknowledge(caller.user_id, caller.device_id, since)
        return since

    async def sync(
        self, caller: Caller, cursor: str | None, timeout_ms: int, *, acknowledge: bool = True
    ) -> SyncResult:
        """Everything after ``cursor``, waiting up to ``timeout_ms``. A long-poll passes
        ``acknowledge`` (the cursor it sends proves the client stored what came before);
        the stream does not, and acknowledges when the client says so."""
        since: int | None = None
        if cursor is not None:
            since = await self.acknowledge(caller, cursor) if acknowledge else decode_cursor(cursor)
        waiter = self.notifier.subscribe(caller.user_id)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_ms / 1000
            while True:
                waiter.clear()
                result = await self.read(caller, since)
                remaining = deadline - loop.time()
                if since is None or not result.empty or remaining <= 0 or self.draining:
                    return result
                await wait_event(waiter, remaining)
        finally:
            self.notifier.unsubscribe(caller.user_id, waiter)

    async def read(self, caller: Caller, since: int | None) -> SyncResult:
        """One look at the stream, without waiting."""
        rows = await self.view.read(caller.user_id, caller.device_id, since, LIMIT)
        upto = rows.upto
        if since is not None and since > upto:
            raise InvalidInput("this sync cursor is ahead of the server", code="invalid_cursor")
        cuts = [lst[LIMIT].pos for lst in (rows.messages, rows.to_device) if len(lst) > LIMIT]
        cuts += [rows.events[LIMIT][0]] if len(rows.events) > LIMIT else []
        if cuts:
            upto = min(cuts) - 1
        events = [e for e in rows.events if e[0] <= upto]
        changed, left = device_lists(caller.user_id, events, rows.peers, rows.former)
        return SyncResult(
            encode_cursor(upto),
            messages=[m for m in rows.messages if m.pos <= upto],
            to_device=[h for h in rows.to_device if h.pos <= upto],
            events=[e for e in events if e[1] != DEVICE_LIST],
            one_time_key_count=rows.one_time_keys,
            fallback_key_unused=rows.fallback_unused,
            changed=changed,
            left=left,
        )


DEVICE_LIST = "device_list"


def device_lists(
    me: str,
    events: list[tuple[int, str, dict[str, Any]]],
    peers: set[str] | None,
    former: set[str],
) -> tuple[list[str], list[str]]:
    """Matrix's ``device_lists``: ``changed`` names users whose devices changed (a
    ``device_list`` event) or who newly share a conversation with ``me``; ``left`` names
    users removed from a conversation with ``me`` (or in one ``me`` left: ``former``) who
    share none with ``me`` any more (``peers``: who shares one now)."""
    changed: dict[str, None] = {}
    removed: dict[str, None] = {}
    for _, kind, content in events:
        if kind == DEVICE_LIST:
            changed[str(content.get("user_id"))] = None
        elif kind == "membership":
            change = content.get("change")
            if change == "created":
                changed.update(dict.fromkeys(m for m in content.get("members", []) if m != me))
            elif change == "joined" and content.get("user_id") != me:
                changed[str(content.get("user_id"))] = None
            elif change in ("left", "removed") and content.get("user_id") != me:
                removed[str(content.get("user_id"))] = None
    removed.update(dict.fromkeys(sorted(former)))
    still = peers or set()
    left = [u for u in removed if u not in still]
    return [u for u in changed if u not in left], left
