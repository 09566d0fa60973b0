"""Users, devices and access tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from clearpost.core.errors import Conflict
from clearpost.storage.db import Database
from clearpost.storage.schema import devices, users


@dataclass(frozen=True, slots=True)
class DeviceRow:
    user_id: str
    device_id: str
    display_name: str | None
    created_at: int
    curve25519: str | None
    ed25519: str | None
    device_keys: str | None


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_user(self, user_id: str, password_hash: str, now_ms: int) -> None:
        try:
            async with self.db.write() as conn:
                await conn.execute(
                    users.insert().values(
                        user_id=user_id,
                        password_hash=password_hash,
                        created_at=now_ms,
                        display_name=None,  # the person's choice; never the username
                    )
                )
        except IntegrityError as exc:
            raise Conflict("that username is taken", code="username_taken") from exc

    async def password_hash(self, user_id: str) -> str | None:
        async with self.db.read() as conn:
            row = await conn.execute(
                select(users.c.password_hash).where(users.c.user_id == user_id)
            )
            return row.scalar_one_or_none()

    async def display_name(self, user_id: str) -> str | None:
        async with self.db.read() as conn:
            row = await conn.execute(select(users.c.display_name).where(users.c.user_id == user_id))
            return row.scalar_one_or_none()

    async def set_group_adds(self, user_id: str, who: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(users).where(users.c.user_id == user_id).values(group_adds=who)
            )

    async def refusing_group_adds(self, user_ids: list[str]) -> set[str]:
        """Which of ``user_ids`` let nobody add them to a group."""
        if not user_ids:
            return set()
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(users.c.user_id).where(
                    users.c.user_id.in_(user_ids), users.c.group_adds == "nobody"
                )
            )
            return {r[0] for r in rows}

    async def group_adds(self, user_id: str) -> str:
        async with self.db.read() as conn:
            row = await conn.execute(select(users.c.group_adds).where(users.c.user_id == user_id))
            return row.scalar_one_or_none() or "anyone"

    async def set_display_name(self, user_id: str, name: str | None) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(users).where(users.c.user_id == user_id).values(display_name=name)
            )

    async def user_exists(self, user_id: str) -> bool:
        async with self.db.read() as conn:
            row = await conn.execute(select(users.c.user_id).where(users.c.user_id == user_id))
            return row.first() is not None

    async def existing_users(self, user_ids: list[str]) -> set[str]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(users.c.user_id).where(users.c.user_id.in_(user_ids)))
            return {r[0] for r in rows}

    async def add_device(
        self, user_id: str, device_id: str, token_hash: str, name: str | None, now_ms: int
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                devices.insert().values(
                    user_id=user_id,
                    device_id=device_id,
                    token_hash=token_hash,
                    display_name=name,
                    created_at=now_ms,
                )
            )

    async def device_for_token(self, token_hash: str) -> tuple[str, str, str | None] | None:
        """(user, device, the device's Curve25519 key if published) for a token hash."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(devices.c.user_id, devices.c.device_id, devices.c.curve25519).where(
                        devices.c.token_hash == token_hash
                    )
                )
            ).first()
            return (row[0], row[1], row[2]) if row else None

    async def list_devices(self, user_id: str) -> list[DeviceRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    devices.c.user_id,
                    devices.c.device_id,
                    devices.c.display_name,
                    devices.c.created_at,
                    devices.c.curve25519,
                    devices.c.ed25519,
                    devices.c.device_keys,
                )
                .where(devices.c.user_id == user_id)
                .order_by(devices.c.created_at, devices.c.device_id)
            )
            return [DeviceRow(*r) for r in rows]
