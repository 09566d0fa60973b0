"""Conversation messages: batched, idempotent appends and history pages.

``append`` writes a whole batch of sends in one transaction: one stream bump, one
sequence bump per conversation, one multi-row insert. Each item succeeds or fails on its
own (not a member, a reused transaction id), and a retry of an earlier send returns the
first result without storing a second copy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from clearpost.core.errors import ClearpostError, Conflict, NotFound
from clearpost.storage.db import Database, Dialect
from clearpost.storage.schema import conversations, memberships, messages
from clearpost.storage.sql import stream
from clearpost.storage.sql.bulk import insert_many
from clearpost.storage.sql.match import any_of
from clearpost.storage.sql.plain import Prepared, plain_sqlite


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


def _append(
    conn: Connection, dialect: Dialect, batch: list[NewMessage], look_up_earlier: bool
) -> tuple[list[StoredMessage | ClearpostError], dict[str, list[str]]]:
    """The batch write itself (plain connection: one thread hop on SQLite)."""
    results: list[StoredMessage | ClearpostError | None] = [None] * len(batch)
    # 1. (retry path only) earlier sends with the same key: return the stored copy.
    earlier: dict[tuple[str, str, str], StoredMessage] = {}
    if look_up_earlier:
        keys = {(m.sender_user, m.sender_device, m.txn_id) for m in batch}
        cols = (messages.c.sender_user, messages.c.sender_device, messages.c.txn_id)
        rows = conn.execute(select(*_COLUMNS, messages.c.txn_id).where(any_of(cols, keys)))
        earlier = {(r[3], r[4], r[7]): StoredMessage(*r[:7]) for r in rows}
    # 2. the current members of every conversation in the batch (indexed look-ups).
    members = _members(conn, sorted({m.conversation_id for m in batch}))
    fresh: list[int] = []
    first_in_batch: dict[tuple[str, str, str], int] = {}
    for i, m in enumerate(batch):
        key = (m.sender_user, m.sender_device, m.txn_id)
        if key in earlier:
            prior = earlier[key]
            results[i] = prior if prior.conversation_id == m.conversation_id else _txn_reused()
        elif m.sender_user not in members.get(m.conversation_id, ()):
            results[i] = _not_member()
        elif key in first_in_batch:
            continue  # a concurrent retry: filled in from the first copy below
        else:
            first_in_batch[key] = i
            fresh.append(i)
    woken: dict[str, list[str]] = {}
    if fresh:
        # 3. positions and gap-free sequence numbers, then one insert.
        top = stream.advance_sync(conn, len(fresh))
        per_conv: dict[str, list[int]] = defaultdict(list)
        for i in fresh:
            per_conv[batch[i].conversation_id].append(i)
        seq_of: dict[int, int] = {}
        for conv_id in sorted(per_conv):
            items = per_conv[conv_id]
            last = _BUMP.scalar(conn, {"conv": conv_id, "n": len(items)})
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
                (
                    stored.pos,
                    m.conversation_id,
                    stored.seq,
                    m.sender_user,
                    m.sender_device,
                    m.txn_id,
                    m.envelope,
                    m.sent_at,
                )
            )
        insert_many(conn, "messages", _INSERT_COLUMNS, rows_out)
        woken = {cid: members[cid] for cid in per_conv}
        stream.announce_sync(conn, dialect, top, {u for us in woken.values() for u in us})
    for i, m in enumerate(batch):
        if results[i] is None:
            results[i] = results[first_in_batch[(m.sender_user, m.sender_device, m.txn_id)]]
    return [r for r in results if r is not None], woken


_INSERT_COLUMNS = (
    "pos",
    "conversation_id",
    "seq",
    "sender_user",
    "sender_device",
    "txn_id",
    "envelope",
    "sent_at",
)


def _members(conn: Connection, conversation_ids: list[str]) -> dict[str, list[str]]:
    """The current members of each conversation: one query on PostgreSQL (a round trip
    each otherwise); on SQLite one plain look-up per conversation is cheaper."""
    members: dict[str, list[str]] = defaultdict(list)
    if plain_sqlite(conn) is None:
        for cid, uid in conn.execute(_MEMBERS, {"convs": conversation_ids}):
            members[cid].append(uid)
        return members
    for cid in conversation_ids:
        members[cid] = [uid for (uid,) in _MEMBERS_OF.rows(conn, {"conv": cid})]
    return members


_MEMBERS = select(memberships.c.conversation_id, memberships.c.user_id).where(
    memberships.c.conversation_id.in_(bindparam("convs", expanding=True)),
    memberships.c.to_seq.is_(None),
)
_MEMBERS_OF = Prepared(
    select(memberships.c.user_id).where(
        memberships.c.conversation_id == bindparam("conv"), memberships.c.to_seq.is_(None)
    )
)
_BUMP = Prepared(
    update(conversations)
    .where(conversations.c.conversation_id == bindparam("conv"))
    .values(last_seq=conversations.c.last_seq + bindparam("n"))
    .returning(conversations.c.last_seq)
)


def _not_member() -> NotFound:
    return NotFound("no such conversation (or you are not a member)", code="conversation_not_found")


class MessageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self, batch: list[NewMessage]
    ) -> tuple[list[StoredMessage | ClearpostError], dict[str, list[str]]]:
        """Store a batch; returns one result per item, and the current members of each
        conversation that received a new message (to wake their syncs).

        Retries are rare, so the batch is first written assuming none of it was sent
        before; if the unique (sender, device, txn_id) index says otherwise, that
        transaction is rolled back and the batch is written again, looking up every
        earlier copy first."""
        try:
            return await self.db.run_write(_append, self.db.dialect, batch, False)
        except IntegrityError:
            return await self.db.run_write(_append, self.db.dialect, batch, True)

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


VISIBLE = (
    select(*_COLUMNS)
    .join(
        memberships,
        and_(
            memberships.c.conversation_id == messages.c.conversation_id,
            memberships.c.user_id == bindparam("user_id"),
            messages.c.seq >= memberships.c.from_seq,
            or_(memberships.c.to_seq.is_(None), messages.c.seq <= memberships.c.to_seq),
        ),
    )
    .where(messages.c.pos > bindparam("since"), messages.c.pos <= bindparam("upto"))
    .order_by(messages.c.pos)
    .limit(bindparam("limit"))
)
"""Messages in ``(since, upto]`` that ``user_id`` may see, oldest first."""


def _txn_reused() -> Conflict:
    return Conflict(
        "this transaction id was already used for a message in another conversation",
        code="txn_id_reused",
    )
