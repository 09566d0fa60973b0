"""Device identity keys, one-time keys and fallback keys.

A one-time key is handed out once, ever: claiming marks it (``claimed_at``) instead of
deleting it, so a re-upload of the same key id is refused. The fallback key is handed out
only when a device has no unclaimed one-time key left.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.errors import Conflict, NotFound
from clearpost.storage.db import Database
from clearpost.storage.schema import devices, fallback_keys, one_time_keys, to_device
from clearpost.storage.sql import events, keydir, stream


@dataclass(frozen=True, slots=True)
class ClaimedKey:
    key_id: str
    key: dict[str, object]
    fallback: bool


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def identity(self, user_id: str, device_id: str) -> tuple[str | None, str | None] | None:
        """(curve25519, ed25519) of a device, None if the device does not exist."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(devices.c.curve25519, devices.c.ed25519).where(
                        devices.c.user_id == user_id, devices.c.device_id == device_id
                    )
                )
            ).first()
            return (row[0], row[1]) if row else None

    async def set_identity(
        self, user_id: str, device_id: str, curve: str, ed: str, signed_json: str, now_ms: int
    ) -> set[str] | None:
        """Store a device's identity keys once; returns the users told about the new device.

        None if the same keys were already there; Conflict if different keys are."""
        async with self.db.write() as conn:
            row = (
                await conn.execute(
                    select(devices.c.curve25519, devices.c.ed25519).where(
                        devices.c.user_id == user_id, devices.c.device_id == device_id
                    )
                )
            ).first()
            if row is None:
                raise NotFound("no such device", code="device_not_found")
            if row[0] is not None:
                if (row[0], row[1]) != (curve, ed):
                    raise Conflict(
                        "this device already has different identity keys; keys never change "
                        "for a device — log in as a new device instead",
                        code="device_keys_changed",
                    )
                return None
            pos = await stream.advance(conn)
            await conn.execute(
                update(devices)
                .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                .values(curve25519=curve, ed25519=ed, device_keys=signed_json)
            )
            await _log_device(conn, user_id, device_id, curve, ed, "added", now_ms)
            return await self._announce(conn, pos, user_id, device_id, "added")

    async def delete_device(self, user_id: str, device_id: str, now_ms: int) -> set[str] | None:
        """Remove a device, its token, keys and held to-device messages.

        Returns the users told about the change, or None if there was no such device."""
        async with self.db.write() as conn:
            pos = await stream.advance(conn)
            result = await conn.execute(
                delete(devices)
                .where(devices.c.user_id == user_id, devices.c.device_id == device_id)
                .returning(devices.c.curve25519, devices.c.ed25519)
            )
            gone = result.first()
            if gone is None:
                await conn.rollback()
                return None
            if gone[0] is not None:  # published keys are withdrawn in the log, too
                await _log_device(conn, user_id, device_id, gone[0], gone[1], "removed", now_ms)
            for table in (one_time_keys, fallback_keys):
                await conn.execute(
                    delete(table).where(table.c.user_id == user_id, table.c.device_id == device_id)
                )
            await conn.execute(
                delete(to_device).where(
                    to_device.c.target_user == user_id, to_device.c.target_device == device_id
                )
            )
            return await self._announce(conn, pos, user_id, device_id, "removed")

    async def _announce(
        self, conn: AsyncConnection, pos: int, user_id: str, device_id: str, change: str
    ) -> set[str]:
        """Tell the user and everyone who shares a conversation with them (a ``device_list``
        sync event), and every server process (cached tokens); returns who was told."""
        await stream.announce_device(conn, self.db.dialect, user_id, device_id)
        peers = await events.peers_of(conn, user_id)
        content = {"user_id": user_id, "device_id": device_id, "change": change}
        await events.fan_out(conn, peers, pos, "device_list", content)
        await stream.announce(conn, self.db.dialect, pos, peers)
        return peers

    async def add_one_time_keys(
        self, user_id: str, device_id: str, keys: dict[str, str], fallback: tuple[str, str] | None
    ) -> int:
        """Store signed one-time keys (key_id -> JSON) and optionally replace the fallback key.

        A key id already used with a different key is a Conflict; the same key again is a
        no-op (a retried upload). Returns the number of unclaimed one-time keys."""
        async with self.db.write() as conn:
            if keys:
                rows = await conn.execute(
                    select(one_time_keys.c.key_id, one_time_keys.c.key_json).where(
                        one_time_keys.c.user_id == user_id,
                        one_time_keys.c.device_id == device_id,
                        one_time_keys.c.key_id.in_(list(keys)),
                    )
                )
                existing = {r[0]: r[1] for r in rows}
                for key_id, old in existing.items():
                    if orjson.loads(old) != orjson.loads(keys[key_id]):
                        raise Conflict(
                            f"one-time key id {key_id!r} was already used", code="key_id_reused"
                        )
                new = [
                    {"user_id": user_id, "device_id": device_id, "key_id": k, "key_json": v}
                    for k, v in keys.items()
                    if k not in existing
                ]
                if new:
                    await conn.execute(one_time_keys.insert(), new)
            if fallback is not None:
                await conn.execute(
                    delete(fallback_keys).where(
                        fallback_keys.c.user_id == user_id, fallback_keys.c.device_id == device_id
                    )
                )
                await conn.execute(
                    fallback_keys.insert().values(
                        user_id=user_id,
                        device_id=device_id,
                        key_id=fallback[0],
                        key_json=fallback[1],
                        used=False,
                    )
                )
            return await _unclaimed(conn, user_id, device_id)

    async def counts(self, user_id: str, device_id: str) -> tuple[int, bool]:
        """(unclaimed one-time keys, whether an unused fallback key is held)."""
        async with self.db.read() as conn:
            return await counts_in(conn, user_id, device_id)

    async def published(self, user_ids: list[str]) -> dict[str, list[tuple[str, str | None, str]]]:
        """Each user's devices with published keys: (device id, display name, device keys)."""
        out: dict[str, list[tuple[str, str | None, str]]] = {u: [] for u in user_ids}
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    devices.c.user_id,
                    devices.c.device_id,
                    devices.c.display_name,
                    devices.c.device_keys,
                )
                .where(devices.c.user_id.in_(user_ids), devices.c.device_keys.is_not(None))
                .order_by(devices.c.user_id, devices.c.created_at, devices.c.device_id)
            )
            for user_id, device_id, name, keys in rows:
                out[user_id].append((device_id, name, keys))
        return out

    async def claim(
        self, wanted: list[tuple[str, str]], now_ms: int
    ) -> dict[tuple[str, str], ClaimedKey]:
        """Hand out one key per requested device; devices with no key at all are left out."""
        out: dict[tuple[str, str], ClaimedKey] = {}
        async with self.db.write() as conn:
            for user_id, device_id in wanted:
                otk = await _claim_one_time_key(conn, user_id, device_id, now_ms)
                if otk is not None:
                    out[(user_id, device_id)] = otk
                    continue
                fb = (
                    await conn.execute(
                        select(fallback_keys.c.key_id, fallback_keys.c.key_json).where(
                            fallback_keys.c.user_id == user_id,
                            fallback_keys.c.device_id == device_id,
                        )
                    )
                ).first()
                if fb is not None:
                    await conn.execute(
                        update(fallback_keys)
                        .where(
                            fallback_keys.c.user_id == user_id,
                            fallback_keys.c.device_id == device_id,
                        )
                        .values(used=True)
                    )
                    out[(user_id, device_id)] = ClaimedKey(fb[0], orjson.loads(fb[1]), True)
        return out


async def _log_device(
    conn: AsyncConnection,
    user_id: str,
    device_id: str,
    curve: str,
    ed: str,
    change: str,
    now_ms: int,
) -> None:
    """A device's keys were published or withdrawn: the next key-directory epoch commits
    the account's new device list (issue 17; no log entry with the device in it)."""
    del device_id, curve, ed, change
    await keydir.mark_dirty(conn, user_id, now_ms)


async def _claim_one_time_key(
    conn: AsyncConnection, user_id: str, device_id: str, now_ms: int
) -> ClaimedKey | None:
    """Mark one unclaimed key as claimed. Retries when a concurrent claim won the same row."""
    while True:
        row = (
            await conn.execute(
                select(one_time_keys.c.key_id, one_time_keys.c.key_json)
                .where(
                    one_time_keys.c.user_id == user_id,
                    one_time_keys.c.device_id == device_id,
                    one_time_keys.c.claimed_at.is_(None),
                )
                .order_by(one_time_keys.c.key_id)
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        result = await conn.execute(
            update(one_time_keys)
            .where(
                one_time_keys.c.user_id == user_id,
                one_time_keys.c.device_id == device_id,
                one_time_keys.c.key_id == row[0],
                one_time_keys.c.claimed_at.is_(None),
            )
            .values(claimed_at=now_ms)
        )
        if result.rowcount == 1:
            return ClaimedKey(row[0], orjson.loads(row[1]), False)


async def _unclaimed(conn: AsyncConnection, user_id: str, device_id: str) -> int:
    ids = {"user_id": user_id, "device_id": device_id}
    return int((await conn.execute(_UNCLAIMED, ids)).scalar_one())


async def counts_in(conn: AsyncConnection, user_id: str, device_id: str) -> tuple[int, bool]:
    """(unclaimed one-time keys, whether an unused fallback key is held)."""
    return await conn.run_sync(counts_sync, user_id, device_id)


def counts_sync(conn: Connection, user_id: str, device_id: str) -> tuple[int, bool]:
    """``counts_in`` for a plain (thread-side) connection."""
    ids = {"user_id": user_id, "device_id": device_id}
    n = conn.execute(_UNCLAIMED, ids).scalar_one()
    used = conn.execute(_FALLBACK_USED, ids).scalar_one_or_none()
    return int(n), used is not None and not used


_UNCLAIMED = select(func.count()).where(
    one_time_keys.c.user_id == bindparam("user_id"),
    one_time_keys.c.device_id == bindparam("device_id"),
    one_time_keys.c.claimed_at.is_(None),
)
_FALLBACK_USED = select(fallback_keys.c.used).where(
    fallback_keys.c.user_id == bindparam("user_id"),
    fallback_keys.c.device_id == bindparam("device_id"),
)
