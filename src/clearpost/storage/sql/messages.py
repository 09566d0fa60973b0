"""Conversation messages: batched, idempotent appends and history pages.

``append`` writes a whole batch of sends in one transaction: one stream bump, one
sequence bump per conversation, one multi-row insert. Each item succeeds or fails on its
own (not a member, a reused transaction id), and a retry of an earlier send returns the
first result without storing a second copy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clearpost.core.errors import ClearpostError, Conflict, NotFound
from clearpost.storage.db import Database
from clearpost.storage.schema import conversations, memberships, messages
from clearpost.storage.sql import stream
from clearpost.storage.sql.match import any_of


@dataclass(frozen=True, slots=True)
class NewMessage:
    conversation_id: str
    sender_user: str
    sender_device: str
    txn_id: str
    envelope: str
    sent_at: int


@dataclass(frozen=True, slots=True)
class StoredMessage:
    pos: int
    conversation_id: str
    seq: int
    sender_user: str
    sender_device: str
    envelope: str
    sent_at: int


_COLUMNS = (
    messages.c.pos,
    messages.c.conversation_id,
    messages.c.seq,
    messages.c.sender_user,
    messages.c.sender_device,
    messages.c.envelope,
    messages.c.sent_at,
)


def _not_member() -> NotFound:
    return NotFound("no such conversation (or you are not a member)", code="conversation_not_found")


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self, batch: list[NewMessage]
    ) -> tuple[list[StoredMessage | ClearpostError], dict[str, list[str]]]:
        """Store a batch; returns one result per item, and the members of each conversation
        that received a new message (to wake their syncs)."""
        results: list[StoredMessage | ClearpostError | None] = [None] * len(batch)
        async with self.db.write() as conn:
            # 1. earlier sends with the same (sender, device, txn_id): return the stored copy.
            keys = {(m.sender_user, m.sender_device, m.txn_id) for m in batch}
            rows = await conn.execute(
                select(*_COLUMNS, messages.c.txn_id).where(
                    any_of(
                        (messages.c.sender_user, messages.c.sender_device, messages.c.txn_id), keys
                    )
                )
            )
            earlier = {(r[3], r[4], r[7]): StoredMessage(*r[:7]) for r in rows}
            # 2. membership of every sender in every conversation of the batch.
            pairs = {(m.conversation_id, m.sender_user) for m in batch}
            rows = await conn.execute(
                select(memberships.c.conversation_id, memberships.c.user_id).where(
                    any_of((memberships.c.conversation_id, memberships.c.user_id), pairs),
                    memberships.c.to_seq.is_(None),
                )
            )
            member_of = {(r[0], r[1]) for r in rows}
            fresh: list[int] = []
            first_in_batch: dict[tuple[str, str, str], int] = {}
            for i, m in enumerate(batch):
                key = (m.sender_user, m.sender_device, m.txn_id)
                if key in earlier:
                    prior = earlier[key]
                    results[i] = (
                        prior if prior.conversation_id == m.conversation_id else _txn_reused()
                    )
                elif (m.conversation_id, m.sender_user) not in member_of:
                    results[i] = _not_member()
                elif key in first_in_batch:
                    continue  # a concurrent retry: filled in from the first copy below
                else:
                    first_in_batch[key] = i
                    fresh.append(i)
            woken: dict[str, list[str]] = {}
            if fresh:
                # 3. positions and gap-free sequence numbers, then one insert.
                top = await stream.advance(conn, len(fresh))
                per_conv: dict[str, list[int]] = defaultdict(list)
                for i in fresh:
                    per_conv[batch[i].conversation_id].append(i)
                seq_of: dict[int, int] = {}
                for conv_id in sorted(per_conv):
                    items = per_conv[conv_id]
                    last = (
                        await conn.execute(
                            update(conversations)
                            .where(conversations.c.conversation_id == conv_id)
                            .values(last_seq=conversations.c.last_seq + len(items))
                            .returning(conversations.c.last_seq)
                        )
                    ).scalar_one()
                    for k, i in enumerate(items):
                        seq_of[i] = int(last) - len(items) + 1 + k
                rows_out = []
                for k, i in enumerate(fresh):
                    m = batch[i]
                    stored = StoredMessage(
                        top - len(fresh) + 1 + k,
                        m.conversation_id,
                        seq_of[i],
                        m.sender_user,
                        m.sender_device,
                        m.envelope,
                        m.sent_at,
                    )
                    results[i] = stored
                    rows_out.append(
                        {
                            "pos": stored.pos,
                            "conversation_id": m.conversation_id,
                            "seq": stored.seq,
                            "sender_user": m.sender_user,
                            "sender_device": m.sender_device,
                            "txn_id": m.txn_id,
                            "envelope": m.envelope,
                            "sent_at": m.sent_at,
                        }
                    )
                await conn.execute(messages.insert(), rows_out)
                member_rows = await conn.execute(
                    select(memberships.c.conversation_id, memberships.c.user_id).where(
                        memberships.c.conversation_id.in_(list(per_conv)),
                        memberships.c.to_seq.is_(None),
                    )
                )
                for cid, uid in member_rows:
                    woken.setdefault(cid, []).append(uid)
                await stream.announce(
                    conn, self.db.dialect, top, {u for us in woken.values() for u in us}
                )
            for i, m in enumerate(batch):
                if results[i] is None:
                    results[i] = results[first_in_batch[(m.sender_user, m.sender_device, m.txn_id)]]
        return [r for r in results if r is not None], woken

    async def history(
        self, conversation_id: str, user_id: str, after: int, limit: int
    ) -> list[StoredMessage]:
        """Messages with seq > ``after`` that ``user_id`` may see (members only, from joining)."""
        async with self.db.read() as conn:
            from_seq = (
                await conn.execute(
                    select(memberships.c.from_seq).where(
                        memberships.c.conversation_id == conversation_id,
                        memberships.c.user_id == user_id,
                        memberships.c.to_seq.is_(None),
                    )
                )
            ).scalar_one_or_none()
            if from_seq is None:
                raise _not_member()
            rows = await conn.execute(
                select(*_COLUMNS)
                .where(
                    messages.c.conversation_id == conversation_id,
                    messages.c.seq > max(after, int(from_seq) - 1),
                )
                .order_by(messages.c.seq)
                .limit(limit)
            )
            return [StoredMessage(*r) for r in rows]

    async def visible_since(
        self, user_id: str, since: int, upto: int, limit: int
    ) -> list[StoredMessage]:
        """Messages in ``(since, upto]`` of the stream that ``user_id`` may see, oldest first."""
        async with self.db.read() as conn:
            return await visible_in(conn, user_id, since, upto, limit)


async def visible_in(
    conn: AsyncConnection, user_id: str, since: int, upto: int, limit: int
) -> list[StoredMessage]:
    rows = await conn.execute(
        select(*_COLUMNS)
        .join(
            memberships,
            and_(
                memberships.c.conversation_id == messages.c.conversation_id,
                memberships.c.user_id == user_id,
                messages.c.seq >= memberships.c.from_seq,
                or_(memberships.c.to_seq.is_(None), messages.c.seq <= memberships.c.to_seq),
            ),
        )
        .where(messages.c.pos > since, messages.c.pos <= upto)
        .order_by(messages.c.pos)
        .limit(limit)
    )
    return [StoredMessage(*r) for r in rows]


def _txn_reused() -> Conflict:
    return Conflict(
        "this transaction id was already used for a message in another conversation",
        code="txn_id_reused",
    )
