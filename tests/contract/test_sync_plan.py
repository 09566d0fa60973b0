"""A sync reads what is new after its cursor, not the member's whole history.

The sync query's cost must grow with the new messages, not with every message ever sent to
the member's conversations (issue 22: 1 ms a sync with 2,016 messages in a group, 37 ms with
66,505, on SQLite). These tests read the query plans the databases choose, so a change that
loses the index fails here instead of in a soak, and check the rows are the same as the
membership rules say.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection, Select, event, text

from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.bulk import insert_many
from clearpost.storage.sql.events import EVENTS
from clearpost.storage.sql.messages import VISIBLE
from clearpost.storage.sql.todevice import HELD

HISTORY = 3000  # messages per conversation: enough that a scan of history is the costly plan
_MESSAGE_COLUMNS = (
    "pos",
    "conversation_id",
    "seq",
    "sender_user",
    "sender_device",
    "txn_id",
    "envelope",
    "sent_at",
)
# (conversation, user, from_seq, to_seq): bob left "g" at seq 1000 and joined again at 2000
_MEMBERSHIPS = [
    ("g", "alice", 1, None),
    ("g", "bob", 1, 1000),
    ("g", "bob", 2000, None),
    ("d", "bob", 1, None),
    ("d", "carol", 1, None),
    ("x", "carol", 1, None),
]


def _seed(conn: Connection) -> None:
    for cid in ("g", "d", "x"):
        conn.exec_driver_sql(
            "INSERT INTO conversations (conversation_id, kind, created_by, created_at, last_seq)"
            f" VALUES ('{cid}', 'group', 'alice', 0, {HISTORY})"
        )
    for cid, user, from_seq, to_seq in _MEMBERSHIPS:
        conn.exec_driver_sql(
            "INSERT INTO memberships (conversation_id, user_id, from_seq, to_seq, joined_at)"
            f" VALUES ('{cid}', '{user}', {from_seq}, {'NULL' if to_seq is None else to_seq}, 0)"
        )
    rows = []
    for seq in range(1, HISTORY + 1):  # the three conversations interleave on the stream
        for k, cid in enumerate(("g", "d", "x")):
            rows.append((3 * (seq - 1) + k + 1, cid, seq, "alice", "d1", f"{cid}{seq}", "e", 0))
    insert_many(conn, "messages", _MESSAGE_COLUMNS, rows)
    users = ("alice", "bob", "carol")
    events = [(users[p % 3], p, "membership", "{}") for p in range(1, 3 * HISTORY + 1)]
    insert_many(conn, "user_events", ("user_id", "pos", "kind", "content"), events)
    held = [(p, users[p % 3], "d1", "alice", "d1", "e") for p in range(1, 3 * HISTORY + 1)]
    columns = ("pos", "target_user", "target_device", "sender_user", "sender_device", "envelope")
    insert_many(conn, "to_device", columns, held)


@pytest.fixture
async def seeded(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    try:
        await upgrade(db)
        await db.run_write(_seed)
        if db.dialect.is_postgres:  # as autovacuum would have by then
            async with db.engine.begin() as conn:
                await conn.execute(text("ANALYZE"))
        yield db
    finally:
        await db.close()


def _plan(conn: Connection, query: Select[Any], params: dict[str, Any]) -> str:
    """The plan the database chooses for ``query`` exactly as the server sends it."""
    is_sqlite = conn.dialect.name == "sqlite"
    prefix = "EXPLAIN QUERY PLAN " if is_sqlite else "EXPLAIN "

    def explain(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> Any:
        return prefix + statement, parameters

    event.listen(conn, "before_cursor_execute", explain, retval=True)
    try:
        rows = conn.execute(query, params).all()
    finally:
        event.remove(conn, "before_cursor_execute", explain)
    return "\n".join(str(r[-1]) for r in rows)


WINDOW = {"user_id": "bob", "device_id": "d1", "since": 3 * HISTORY - 30, "upto": 3 * HISTORY}


async def test_the_sync_query_searches_the_new_messages_by_position(seeded: Database) -> None:
    plan = await seeded.run_read(_plan, VISIBLE, {**WINDOW, "limit": 101})
    if seeded.dialect.is_sqlite:
        # each of the member's conversations is searched from the cursor on; the sort that
        # follows is over those rows only
        assert "SEARCH messages USING INDEX ix_messages_conv_pos" in plan, plan
        assert "pos>? AND pos<?" in plan, plan
        assert "SCAN messages" not in plan, plan
    else:
        assert "Seq Scan on messages" not in plan, plan
        assert "Index Cond" in plan and "pos >" in plan, plan


@pytest.mark.parametrize("query", [EVENTS, HELD], ids=["events", "to-device"])
async def test_the_other_sync_queries_search_by_user_and_position(
    seeded: Database, query: Select[Any]
) -> None:
    plan = await seeded.run_read(_plan, query, {**WINDOW, "limit": 101})
    assert "SCAN user_events" not in plan and "SCAN to_device" not in plan, plan
    assert "Seq Scan" not in plan, plan


def _expected(user: str, since: int, upto: int, limit: int) -> list[tuple[int, str, int]]:
    """What the membership rules let ``user`` see in ``(since, upto]``, from first principles."""
    seen = []
    for seq in range(1, HISTORY + 1):
        for k, cid in enumerate(("g", "d", "x")):
            pos = 3 * (seq - 1) + k + 1
            if not since < pos <= upto:
                continue
            for m_cid, m_user, from_seq, to_seq in _MEMBERSHIPS:
                ended = to_seq is not None and seq > to_seq
                if m_cid == cid and m_user == user and seq >= from_seq and not ended:
                    seen.append((pos, cid, seq))
                    break
    return seen[:limit]


@pytest.mark.parametrize(
    ("user", "since", "upto", "limit"),
    [
        ("bob", 0, 3 * HISTORY, 10_000),  # everything: bob's gap in "g" is left out
        ("bob", 2990, 6010, 10_000),  # across bob's leaving and rejoining "g"
        ("bob", 2990, 6010, 7),  # truncated: the oldest first
        ("alice", 100, 130, 100),
        ("carol", 3 * HISTORY - 5, 3 * HISTORY, 100),
        ("carol", 3 * HISTORY, 3 * HISTORY, 100),  # nothing new
        ("dave", 0, 3 * HISTORY, 100),  # a member of nothing
    ],
)
async def test_a_sync_returns_what_the_membership_rules_allow(
    seeded: Database, user: str, since: int, upto: int, limit: int
) -> None:
    def read(conn: Connection) -> list[tuple[int, str, int]]:
        params = {"user_id": user, "since": since, "upto": upto, "limit": limit}
        return [(int(r[0]), r[1], int(r[2])) for r in conn.execute(VISIBLE, params)]

    assert await seeded.run_read(read) == _expected(user, since, upto, limit)
