"""Share intents (to the user's own devices only), their click links, and clicks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from clearpost.core.tlog.entries import Committed
from clearpost.storage.db import Database
from clearpost.storage.schema import clicks, share_intents, share_links
from clearpost.storage.sql import events, stream, tlog


@dataclass(frozen=True, slots=True)
class IntentRow:
    intent_id: str
    partner_id: str
    user_id: str
    title: str
    url: str
    image_url: str | None
    description: str | None
    created_at: int
    expires_at: int
    completed_at: int | None
    recipients: int | None
    log_index: int


@dataclass(frozen=True, slots=True)
class LinkRow:
    token: str
    intent_id: str
    partner_id: str
    url: str
    created_at: int
    expires_at: int


class ShareStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        intent: IntentRow,
        link: LinkRow,
        entry: bytes,
        about: Committed,
        event: dict[str, Any],
    ) -> int:
        """Log the partner's access, store the intent and its link, and put it in the user's
        sync, in one transaction. Returns the log index."""
        async with self.db.write() as conn:
            pos = await stream.advance(conn)
            (index,) = await tlog.append_in(
                conn, [tlog.PendingEntry.about(entry, about)], intent.created_at
            )
            await conn.execute(
                share_intents.insert().values(**{**_row(intent), "log_index": index})
            )
            await conn.execute(share_links.insert().values(**_row(link)))
            await events.fan_out(
                conn, [intent.user_id], pos, "share_intent", {**event, "log_index": index}
            )
            await stream.announce(conn, self.db.dialect, pos, [intent.user_id])
            return index

    async def intent(self, intent_id: str) -> IntentRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(share_intents).where(share_intents.c.intent_id == intent_id)
                )
            ).first()
            return IntentRow(*row) if row else None

    async def pending(self, user_id: str, now_ms: int) -> list[tuple[IntentRow, str | None]]:
        """The user's open intents, oldest first, each with its link's token."""
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(share_intents, share_links.c.token)
                .join_from(
                    share_intents,
                    share_links,
                    share_links.c.intent_id == share_intents.c.intent_id,
                    isouter=True,
                )
                .where(
                    share_intents.c.user_id == user_id,
                    share_intents.c.completed_at.is_(None),
                    share_intents.c.expires_at > now_ms,
                )
                .order_by(share_intents.c.created_at)
            )
            return [(IntentRow(*r[:-1]), r[-1]) for r in rows]

    async def complete(self, intent_id: str, user_id: str, recipients: int, now_ms: int) -> bool:
        """Record that the user shared it, with only the number of recipients. False if the
        intent is not theirs, expired or already completed."""
        async with self.db.write() as conn:
            result = await conn.execute(
                update(share_intents)
                .where(
                    share_intents.c.intent_id == intent_id,
                    share_intents.c.user_id == user_id,
                    share_intents.c.completed_at.is_(None),
                    share_intents.c.expires_at > now_ms,
                )
                .values(completed_at=now_ms, recipients=recipients)
            )
            return bool(result.rowcount == 1)

    async def link(self, token: str) -> LinkRow | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(select(share_links).where(share_links.c.token == token))
            ).first()
            return LinkRow(*row) if row else None

    async def click(self, token: str, partner_id: str, now_ms: int) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                clicks.insert().values(token=token, partner_id=partner_id, at=now_ms)
            )

    async def click_count(self, token: str) -> int:
        async with self.db.read() as conn:
            return int(
                (
                    await conn.execute(select(func.count()).where(clicks.c.token == token))
                ).scalar_one()
            )


def _row(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}
