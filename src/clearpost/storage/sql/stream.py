"""Stream positions and the cross-process wake-up signal.

``advance`` must be the first write of a transaction that produces sync-visible rows: it
locks the single ``stream`` row until commit, so positions commit in order. ``announce``
queues a PostgreSQL NOTIFY that is delivered only if the transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from sqlalchemy import Connection, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.storage.db import Dialect
from clearpost.storage.schema import stream
from clearpost.storage.sql.plain import Prepared

CHANNEL = "clearpost_stream"
DEVICE_CHANNEL = "clearpost_devices"
"""Signals "this device changed (keys published, or deleted)": processes drop cached tokens."""
_MAX_PAYLOAD = 7000
EVERYONE = "*"


_ADVANCE = (
    update(stream)
    .where(stream.c.id == 1)
    .values(pos=stream.c.pos + bindparam("n"))
    .returning(stream.c.pos)
)


async def advance(conn: AsyncConnection, n: int = 1) -> int:
    """Reserve ``n`` positions; return the highest one (the first is ``result - n + 1``)."""
    return int((await conn.execute(_ADVANCE, {"n": n})).scalar_one())


_ADVANCE_PLAIN = Prepared(_ADVANCE)


def advance_sync(conn: Connection, n: int = 1) -> int:
    """``advance`` for a plain (thread-side) connection."""
    return int(_ADVANCE_PLAIN.scalar(conn, {"n": n}))


CURRENT = select(func.max(stream.c.pos))


async def current(conn: AsyncConnection) -> int:
    result = await conn.execute(CURRENT)
    return int(result.scalar_one() or 0)


def encode_signal(pos: int, users: Iterable[str]) -> str:
    users = sorted(set(users))
    payload = orjson.dumps({"p": pos, "u": users}).decode()
    if len(payload) > _MAX_PAYLOAD:
        payload = orjson.dumps({"p": pos, "u": EVERYONE}).decode()
    return payload


def decode_signal(payload: str) -> tuple[int, list[str] | None]:
    """(pos, users) from a NOTIFY payload; users None means "wake everyone"."""
    data = orjson.loads(payload)
    users = data.get("u")
    return int(data["p"]), (None if users == EVERYONE else [str(u) for u in users])


_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def announce(conn: AsyncConnection, dialect: Dialect, pos: int, users: Iterable[str]) -> None:
    if dialect.is_postgres:
        await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": encode_signal(pos, users)})


def announce_sync(conn: Connection, dialect: Dialect, pos: int, users: Iterable[str]) -> None:
    """``announce`` for a plain (thread-side) connection."""
    if dialect.is_postgres:
        conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": encode_signal(pos, users)})


async def announce_device(
    conn: AsyncConnection, dialect: Dialect, user_id: str, device_id: str
) -> None:
    if dialect.is_postgres:
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": DEVICE_CHANNEL, "payload": orjson.dumps([user_id, device_id]).decode()},
        )


def decode_device(payload: str) -> tuple[str, str]:
    user_id, device_id = orjson.loads(payload)
    return str(user_id), str(device_id)
