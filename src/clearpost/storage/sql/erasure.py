"""Erasing an account: every row that names it goes, or is re-attributed to a pseudonym.

What stays, re-attributed: the ciphertext of messages already sent to others (the server
cannot read it, and deleting it would change other people's conversations), the
conversations it created and its completed shares (they are counted in partner reports).
What goes: the account, its salt (so its log entries can no longer be linked to anybody),
the server's private index of which entries were its and the openings kept for its devices,
devices, keys, tokens, consents, sessions, memberships, pending intents, held to-device
messages and its own sync events. On SQLite the deletions overwrite the freed bytes
(``secure_delete``) and the WAL is checkpointed and truncated afterwards, so the file
keeps no copy of what was erased.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import Connection, delete, func, select, update

from clearpost.core.keydir_labels import KINDS, label
from clearpost.core.tlog.entries import commitment
from clearpost.storage.db import Database
from clearpost.storage.schema import (
    conversations,
    memberships,
    messages,
    oauth_codes,
    oauth_grants,
    oauth_tokens,
    share_intents,
    tlog_entries,
    to_device,
    to_device_txns,
    user_events,
    user_salts,
    users,
    web_sessions,
)
from clearpost.storage.sql import keydir


def _erase(conn: Connection, user_id: str, pseudonym: str, secure: bool) -> bool:
    if secure:
        conn.exec_driver_sql("PRAGMA secure_delete=ON")
    try:
        gone = conn.execute(delete(users).where(users.c.user_id == user_id)).rowcount == 1
        if not gone:
            return False
        salt = conn.execute(
            select(user_salts.c.salt).where(user_salts.c.user_id == user_id)
        ).scalar_one_or_none()
        if salt is not None:  # the server's private index of the person's log entries, and
            # the openings it kept for their devices: without them the operator cannot even
            # tell which entries belonged together
            conn.execute(
                update(tlog_entries)
                .where(tlog_entries.c.subject == commitment(bytes(salt), user_id))
                .values(subject=None, opening=None)
            )
        keydir.forget_user_sync(conn, user_id, [label(k, user_id).decode() for k in KINDS])
        for table, column in (
            (user_salts, user_salts.c.user_id),
            (oauth_codes, oauth_codes.c.user_id),
            (oauth_tokens, oauth_tokens.c.user_id),
            (oauth_grants, oauth_grants.c.user_id),
            (web_sessions, web_sessions.c.user_id),
            (memberships, memberships.c.user_id),
            (user_events, user_events.c.user_id),
            (to_device, to_device.c.target_user),
            (to_device, to_device.c.sender_user),
            (to_device_txns, to_device_txns.c.sender_user),
        ):
            conn.execute(delete(table).where(column == user_id))
        conn.execute(
            delete(share_intents).where(
                share_intents.c.user_id == user_id, share_intents.c.completed_at.is_(None)
            )
        )
        conn.execute(
            update(share_intents)
            .where(share_intents.c.user_id == user_id)
            .values(user_id=pseudonym)
        )
        conn.execute(
            update(messages).where(messages.c.sender_user == user_id).values(sender_user=pseudonym)
        )
        conn.execute(
            update(conversations)
            .where(conversations.c.created_by == user_id)
            .values(created_by=pseudonym)
        )
        quoted, replacement = f'"{user_id}"', f'"{pseudonym}"'
        conn.execute(  # other people's events that name the account (JSON)
            update(user_events)
            .where(user_events.c.content.contains(quoted))
            .values(content=func.replace(user_events.c.content, quoted, replacement))
        )
        direct = conn.execute(  # a direct conversation's key names both people
            select(conversations.c.conversation_id, conversations.c.direct_key).where(
                conversations.c.direct_key.contains(user_id)
            )
        ).all()
        for conversation_id, key in direct:
            people = [pseudonym if p == user_id else p for p in key.split("|")]
            if people != key.split("|"):
                conn.execute(
                    update(conversations)
                    .where(conversations.c.conversation_id == conversation_id)
                    .values(direct_key="|".join(people))
                )
        return True
    finally:
        if secure:
            conn.exec_driver_sql("PRAGMA secure_delete=OFF")


async def erase_account(db: Database, user_id: str, pseudonym: str) -> bool:
    """Erase ``user_id`` in one transaction; False if there was no such account."""
    done = await db.run_write(_erase, user_id, pseudonym, db.dialect.is_sqlite)
    if done and db.dialect.is_sqlite and db.sqlite_path is not None:
        _truncate_wal(db.sqlite_path)
    return done


def _truncate_wal(path: Path, tries: int = 50) -> None:
    """Copy the WAL into the file and empty it, so the erased rows' old page images are
    gone from disk. A reader in the middle of a transaction delays it; try for ~5 s."""
    conn = sqlite3.connect(path, timeout=5)
    try:
        for _ in range(tries):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy == 0:
                return
            time.sleep(0.1)
    finally:
        conn.close()
