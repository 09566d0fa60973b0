"""Partners, their agreement versions, and the scope catalogue versions.

Every agreement version and catalogue version is appended to the transparency log in the
same transaction that makes it effective, so there is never an unpublished agreement.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from clearpost.core.errors import Conflict, NotFound
from clearpost.storage.db import Database
from clearpost.storage.schema import agreements, partners, scope_catalogues
from clearpost.storage.sql import tlog


@dataclass(frozen=True, slots=True)
class AgreementVersion:
    partner_id: str
    version: int
    body: str
    log_index: int
    created_at: int


@dataclass(frozen=True, slots=True)
class PartnerRow:
    partner_id: str
    name: str
    secret_hash: str
    version: int
    created_at: int
    suspended_at: int | None = None


class PartnerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def publish_agreement(
        self,
        partner_id: str,
        name: str,
        body: str,
        entry: bytes,
        now_ms: int,
        secret_hash: str | None,
    ) -> AgreementVersion:
        """Log and store a new agreement version. ``secret_hash`` set means a new partner."""
        try:
            async with self.db.write() as conn:
                if secret_hash is not None:
                    await conn.execute(
                        partners.insert().values(
                            partner_id=partner_id,
                            name=name,
                            secret_hash=secret_hash,
                            version=1,
                            created_at=now_ms,
                        )
                    )
                    version = 1
                else:
                    row = (
                        await conn.execute(
                            update(partners)
                            .where(partners.c.partner_id == partner_id)
                            .values(version=partners.c.version + 1, name=name)
                            .returning(partners.c.version)
                        )
                    ).first()
                    if row is None:
                        raise NotFound(f"no partner {partner_id!r}", code="partner_not_found")
                    version = int(row[0])
                (index,) = await tlog.append_in(conn, [tlog.PendingEntry(entry, None)], now_ms)
                await conn.execute(
                    agreements.insert().values(
                        partner_id=partner_id,
                        version=version,
                        body=body,
                        log_index=index,
                        created_at=now_ms,
                    )
                )
                return AgreementVersion(partner_id, version, body, index, now_ms)
        except IntegrityError as exc:
            raise Conflict(
                f"partner {partner_id!r} is already registered", code="partner_exists"
            ) from exc

    async def change(
        self,
        partner_id: str,
        entry: bytes,
        now_ms: int,
        *,
        suspended_at: int | None = None,
        resume: bool = False,
        secret_hash: str | None = None,
    ) -> int:
        """Apply an operator's change to a partner and log it in the same transaction (the
        entry is appended before the change can be seen). Returns the entry's log index."""
        values: dict[str, object] = {}
        if suspended_at is not None:
            values["suspended_at"] = suspended_at
        if resume:
            values["suspended_at"] = None
        if secret_hash is not None:
            values["secret_hash"] = secret_hash
        async with self.db.write() as conn:
            (index,) = await tlog.append_in(conn, [tlog.PendingEntry(entry, None)], now_ms)
            done = await conn.execute(
                update(partners).where(partners.c.partner_id == partner_id).values(**values)
            )
            if done.rowcount != 1:
                raise NotFound(f"no partner {partner_id[:40]!r}", code="partner_not_found")
            return int(index)

    async def partner(self, partner_id: str) -> PartnerRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(partners).where(partners.c.partner_id == partner_id))
            ).first()
            return PartnerRow(*row) if row else None

    async def partners(self) -> list[PartnerRow]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(partners).order_by(partners.c.partner_id))
            return [PartnerRow(*r) for r in rows]

    async def versions(self, partner_id: str) -> list[AgreementVersion]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(agreements)
                .where(agreements.c.partner_id == partner_id)
                .order_by(agreements.c.version)
            )
            return [AgreementVersion(*r) for r in rows]

    async def current(self, partner_id: str) -> AgreementVersion | None:
        versions = await self.versions(partner_id)
        return versions[-1] if versions else None

    async def publish_catalogue(self, version: int, body: str, entry: bytes, now_ms: int) -> int:
        """Log the scope catalogue once per version; returns its log index."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(scope_catalogues.c.log_index).where(
                        scope_catalogues.c.version == version
                    )
                )
            ).first()
        if row is not None:
            return int(row[0])
        try:
            async with self.db.write() as conn:
                (index,) = await tlog.append_in(conn, [tlog.PendingEntry(entry, None)], now_ms)
                await conn.execute(
                    scope_catalogues.insert().values(version=version, body=body, log_index=index)
                )
                return index
        except IntegrityError:  # another process published it first
            return await self.publish_catalogue(version, body, entry, now_ms)

    async def catalogues(self) -> list[tuple[int, str, int]]:
        async with self.db.read() as conn:
            rows = await conn.execute(select(scope_catalogues).order_by(scope_catalogues.c.version))
            return [(int(r[0]), r[1], int(r[2])) for r in rows]
