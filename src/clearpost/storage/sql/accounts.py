"""Users, devices and access tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from clearpost.core.errors import Conflict, Forbidden
from clearpost.storage.db import Database
from clearpost.storage.schema import devices, invites, users


@dataclass(frozen=True, slots=True)
class DeviceRow:
    user_id: str
    device_id: str
    display_name: str | None
    created_at: int
    curve25519: str | None
    ed25519: str | None
    device_keys: str | None


@dataclass(frozen=True, slots=True)
class UserRow:
    user_id: str
    created_at: int
    suspended_at: int | None
    devices: int


@dataclass(frozen=True, slots=True)
class InviteRow:
    created_at: int
    expires_at: int
    used_at: int | None
    note: str | None


class AccountStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create_user(
        self, user_id: str, password_hash: str, now_ms: int, invite_hash: str | None = None
    ) -> None:
        """Create the account; with ``invite_hash``, spend that invite in the same
        transaction (a taken username leaves the invite unspent)."""
        try:
            async with self.db.write() as conn:
                if invite_hash is not None:
                    spent = await conn.execute(
                        update(invites)
                        .where(
                            invites.c.token_hash == invite_hash,
                            invites.c.used_at.is_(None),
                            invites.c.expires_at > now_ms,
                        )
                        .values(used_at=now_ms)
                    )
                    if spent.rowcount != 1:
                        raise Forbidden(
                            "the invite is not valid (unknown, used or expired)",
                            code="invalid_invite",
                        )
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

    async def device_for_token(self, token_hash: str) -> tuple[str, str, str | None, bool] | None:
        """(user, device, the device's Curve25519 key if published, whether the account is
        suspended) for a token hash."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(
                        devices.c.user_id,
                        devices.c.device_id,
                        devices.c.curve25519,
                        users.c.suspended_at,
                    )
                    .join(users, users.c.user_id == devices.c.user_id)
                    .where(devices.c.token_hash == token_hash)
                )
            ).first()
            return (row[0], row[1], row[2], row[3] is not None) if row else None

    async def is_suspended(self, user_id: str) -> bool:
        async with self.db.read() as conn:
            row = await conn.execute(select(users.c.suspended_at).where(users.c.user_id == user_id))
            return row.scalar_one_or_none() is not None

    async def set_password(self, user_id: str, password_hash: str) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(users).where(users.c.user_id == user_id).values(password_hash=password_hash)
            )

    async def set_suspended(self, user_id: str, at_ms: int | None) -> bool:
        """Suspend (a time) or reinstate (None) an account; False if there is none."""
        async with self.db.write() as conn:
            done = await conn.execute(
                update(users).where(users.c.user_id == user_id).values(suspended_at=at_ms)
            )
            return bool(done.rowcount == 1)

    async def users(self) -> list[UserRow]:
        """Every account with its device count, oldest first (for operators)."""
        count = (
            select(func.count())
            .select_from(devices)
            .where(devices.c.user_id == users.c.user_id)
            .scalar_subquery()
        )
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(users.c.user_id, users.c.created_at, users.c.suspended_at, count).order_by(
                    users.c.created_at, users.c.user_id
                )
            )
            return [UserRow(r[0], r[1], r[2], int(r[3])) for r in rows]

    async def add_invite(
        self, token_hash: str, now_ms: int, expires_at: int, note: str | None
    ) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                invites.insert().values(
                    token_hash=token_hash, created_at=now_ms, expires_at=expires_at, note=note
                )
            )

    async def invites(self) -> list[InviteRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(
                    invites.c.created_at, invites.c.expires_at, invites.c.used_at, invites.c.note
                ).order_by(invites.c.created_at)
            )
            return [InviteRow(*r) for r in rows]

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
