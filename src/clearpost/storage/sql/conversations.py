"""Conversations and memberships.

A membership row covers the sequence numbers a user may see: from ``from_seq`` (the first
message after they joined) to ``to_seq`` (the last before they left; NULL while a member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.errors import Conflict, Forbidden, NotFound
from clearpost.storage.db import Database
from clearpost.storage.schema import conversations, memberships
from clearpost.storage.sql import events, stream


@dataclass(frozen=True, slots=True)
class ConversationRow:
    conversation_id: str
    kind: str
    created_by: str
    created_at: int
    last_seq: int
    members: list[str]
    joined_from_seq: int


def _not_found() -> NotFound:
    return NotFound("no such conversation (or you are not a member)", code="conversation_not_found")


async def current_members(conn: AsyncConnection, conversation_id: str) -> list[str]:
    rows = await conn.execute(
        select(memberships.c.user_id)
        .where(memberships.c.conversation_id == conversation_id, memberships.c.to_seq.is_(None))
        .order_by(memberships.c.user_id)
    )
    return [r[0] for r in rows]


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        conversation_id: str,
        kind: str,
        creator: str,
        members: list[str],
        direct_key: str | None,
        now_ms: int,
    ) -> tuple[str, bool]:
        """Create a conversation; returns (id, created). A direct conversation between the same
        two users is created once: asking again returns the existing one."""
        if direct_key is not None:
            existing = await self._direct(direct_key)
            if existing is not None:
                return existing, False
        try:
            async with self.db.write() as conn:
                pos = await stream.advance(conn)
                await conn.execute(
                    conversations.insert().values(
                        conversation_id=conversation_id,
                        kind=kind,
                        created_by=creator,
                        created_at=now_ms,
                        last_seq=0,
                        direct_key=direct_key,
                    )
                )
                await conn.execute(
                    memberships.insert(),
                    [
                        {
                            "conversation_id": conversation_id,
                            "user_id": m,
                            "from_seq": 1,
                            "joined_at": now_ms,
                        }
                        for m in members
                    ],
                )
                content = {
                    "conversation_id": conversation_id,
                    "change": "created",
                    "kind": kind,
                    "members": members,
                    "by": creator,
                }
                await events.fan_out(conn, members, pos, "membership", content)
                await stream.announce(conn, self.db.dialect, pos, members)
        except IntegrityError:
            existing = await self._direct(direct_key) if direct_key else None
            if existing is None:
                raise
            return existing, False
        return conversation_id, True

    async def _direct(self, direct_key: str) -> str | None:
        async with self.db.read() as conn:
            row = await conn.execute(
                select(conversations.c.conversation_id).where(
                    conversations.c.direct_key == direct_key
                )
            )
            return row.scalar_one_or_none()

    async def list_for(
        self, user_id: str, after: tuple[int, str] | None = None, limit: int | None = None
    ) -> list[ConversationRow]:
        """The conversations ``user_id`` is in, oldest first, from after ``after`` (a
        (created_at, conversation_id) position), at most ``limit``."""
        query = _mine(user_id)
        if after is not None:
            query = query.where(
                (conversations.c.created_at > after[0])
                | (
                    (conversations.c.created_at == after[0])
                    & (conversations.c.conversation_id > after[1])
                )
            )
        query = query.order_by(conversations.c.created_at, conversations.c.conversation_id)
        if limit is not None:
            query = query.limit(limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            ids = [r[0] for r in rows]
            members: dict[str, list[str]] = {i: [] for i in ids}
            if ids:
                mrows = await conn.execute(
                    select(memberships.c.conversation_id, memberships.c.user_id)
                    .where(memberships.c.conversation_id.in_(ids), memberships.c.to_seq.is_(None))
                    .order_by(memberships.c.user_id)
                )
                for cid, uid in mrows:
                    members[cid].append(uid)
            return [
                ConversationRow(r[0], r[1], r[2], r[3], r[4], members[r[0]], r[5]) for r in rows
            ]

    async def count_for(self, user_id: str) -> int:
        async with self.db.read() as conn:
            found = await conn.execute(select(func.count()).select_from(_mine(user_id).subquery()))
            return int(found.scalar_one())

    async def get(self, conversation_id: str, user_id: str) -> ConversationRow:
        async with self.db.read() as conn:
            return await _get(conn, conversation_id, user_id)

    async def add_member(self, conversation_id: str, actor: str, target: str, now_ms: int) -> None:
        async with self.db.write() as conn:
            pos = await stream.advance(conn)
            conv = await _get(conn, conversation_id, actor)
            if conv.kind != "group":
                raise Conflict(
                    "members of a direct conversation cannot change", code="direct_conversation"
                )
            if target in conv.members:
                raise Conflict(f"{target} is already a member", code="already_member")
            await conn.execute(
                memberships.insert().values(
                    conversation_id=conversation_id,
                    user_id=target,
                    from_seq=conv.last_seq + 1,
                    joined_at=now_ms,
                )
            )
            audience = [*conv.members, target]
            content = {
                "conversation_id": conversation_id,
                "change": "joined",
                "user_id": target,
                "by": actor,
            }
            await events.fan_out(conn, audience, pos, "membership", content)
            await stream.announce(conn, self.db.dialect, pos, audience)

    async def remove_member(self, conversation_id: str, actor: str, target: str) -> None:
        """Remove ``target`` (``actor == target`` is leaving). Only the creator removes others."""
        async with self.db.write() as conn:
            pos = await stream.advance(conn)
            conv = await _get(conn, conversation_id, actor)
            if actor != target:
                if conv.kind != "group":
                    raise Conflict(
                        "members of a direct conversation cannot change", code="direct_conversation"
                    )
                if conv.created_by != actor:
                    raise Forbidden(
                        "only the group's creator can remove members", code="not_group_admin"
                    )
                if target not in conv.members:
                    raise NotFound(f"{target} is not a member", code="not_a_member")
            await conn.execute(
                update(memberships)
                .where(
                    memberships.c.conversation_id == conversation_id,
                    memberships.c.user_id == target,
                    memberships.c.to_seq.is_(None),
                )
                .values(to_seq=conv.last_seq)
            )
            content = {
                "conversation_id": conversation_id,
                "change": "left" if actor == target else "removed",
                "user_id": target,
                "by": actor,
            }
            await events.fan_out(conn, conv.members, pos, "membership", content)
            await stream.announce(conn, self.db.dialect, pos, conv.members)


def _mine(user_id: str) -> Select[Any]:
    """The conversations ``user_id`` is a member of now, with the seq they see from."""
    return (
        select(
            conversations.c.conversation_id,
            conversations.c.kind,
            conversations.c.created_by,
            conversations.c.created_at,
            conversations.c.last_seq,
            memberships.c.from_seq,
        )
        .join(memberships, memberships.c.conversation_id == conversations.c.conversation_id)
        .where(memberships.c.user_id == user_id, memberships.c.to_seq.is_(None))
    )


async def _get(conn: AsyncConnection, conversation_id: str, user_id: str) -> ConversationRow:
    row = (
        await conn.execute(_mine(user_id).where(conversations.c.conversation_id == conversation_id))
    ).first()
    if row is None:
        raise _not_found()
    members = await current_members(conn, conversation_id)
    return ConversationRow(row[0], row[1], row[2], row[3], row[4], members, row[5])
