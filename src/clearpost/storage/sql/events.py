"""Per-user sync events (membership and device-list changes), fanned out at write time."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.storage.schema import memberships, user_events


async def peers_of(conn: AsyncConnection, user_id: str) -> set[str]:
    """Users who share a current conversation with ``user_id`` (``user_id`` included)."""
    mine = select(memberships.c.conversation_id).where(
        memberships.c.user_id == user_id, memberships.c.to_seq.is_(None)
    )
    rows = await conn.execute(
        select(memberships.c.user_id)
        .where(memberships.c.conversation_id.in_(mine), memberships.c.to_seq.is_(None))
        .distinct()
    )
    return {r[0] for r in rows} | {user_id}


async def fan_out(
    conn: AsyncConnection, users: Iterable[str], pos: int, kind: str, content: dict[str, Any]
) -> None:
    body = orjson.dumps(content).decode()
    rows = [{"user_id": u, "pos": pos, "kind": kind, "content": body} for u in sorted(set(users))]
    if rows:
        await conn.execute(user_events.insert(), rows)


EVENTS = (
    select(user_events.c.pos, user_events.c.kind, user_events.c.content)
    .where(
        user_events.c.user_id == bindparam("user_id"),
        user_events.c.pos > bindparam("since"),
        user_events.c.pos <= bindparam("upto"),
    )
    .order_by(user_events.c.pos, user_events.c.id)
    .limit(bindparam("limit"))
)
"""A user's events in ``(since, upto]``."""


def event_rows(rows: Iterable[Any]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(r[0], r[1], orjson.loads(r[2])) for r in rows]
