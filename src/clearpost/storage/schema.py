"""Table definitions used by the stores. The migrations in ``migrations/versions`` create them.

Stream positions (``pos``) come from the single-row ``stream`` table, bumped inside each
writing transaction. Because that row is locked until commit, positions become visible in
order on PostgreSQL too, so a sync cursor never skips a row that commits late.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

stream = Table(
    "stream",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("pos", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("user_id", String(40), nullable=False),
    Column("device_id", String(16), nullable=False),
    Column("display_name", String(100), nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("curve25519", String(64), nullable=True),
    Column("ed25519", String(64), nullable=True),
    Column("device_keys", Text, nullable=True),
    PrimaryKeyConstraint("user_id", "device_id"),
    ForeignKeyConstraint(["user_id"], ["users.user_id"], ondelete="CASCADE"),
)

one_time_keys = Table(
    "one_time_keys",
    metadata,
    Column("user_id", String(40), nullable=False),
    Column("device_id", String(16), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("key_json", Text, nullable=False),
    Column("claimed_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("user_id", "device_id", "key_id"),
)
Index(
    "ix_otk_unclaimed",
    one_time_keys.c.user_id,
    one_time_keys.c.device_id,
    one_time_keys.c.claimed_at,
)

fallback_keys = Table(
    "fallback_keys",
    metadata,
    Column("user_id", String(40), nullable=False),
    Column("device_id", String(16), nullable=False),
    Column("key_id", String(64), nullable=False),
    Column("key_json", Text, nullable=False),
    Column("used", Boolean, nullable=False),
    PrimaryKeyConstraint("user_id", "device_id"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("conversation_id", String(40), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("created_by", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("direct_key", String(100), nullable=True, unique=True),
)

memberships = Table(
    "memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(40), nullable=False),
    Column("user_id", String(40), nullable=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=True),
    Column("joined_at", BigInteger, nullable=False),
)
Index("ix_memberships_user", memberships.c.user_id, memberships.c.to_seq)
Index("ix_memberships_conv", memberships.c.conversation_id, memberships.c.to_seq)

messages = Table(
    "messages",
    metadata,
    Column("pos", BigInteger, primary_key=True, autoincrement=False),
    Column("conversation_id", String(40), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("sender_user", String(40), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("txn_id", String(64), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("sent_at", BigInteger, nullable=False),
    UniqueConstraint("conversation_id", "seq", name="uq_messages_conv_seq"),
    UniqueConstraint("sender_user", "sender_device", "txn_id", name="uq_messages_txn"),
)

to_device = Table(
    "to_device",
    metadata,
    Column("pos", BigInteger, nullable=False),
    Column("target_user", String(40), nullable=False),
    Column("target_device", String(16), nullable=False),
    Column("sender_user", String(40), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("envelope", Text, nullable=False),
    PrimaryKeyConstraint("target_user", "target_device", "pos"),
)

to_device_txns = Table(
    "to_device_txns",
    metadata,
    Column("sender_user", String(40), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("txn_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("sender_user", "sender_device", "txn_id"),
)

user_events = Table(
    "user_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(40), nullable=False),
    Column("pos", BigInteger, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("content", Text, nullable=False),
)
Index("ix_user_events_user_pos", user_events.c.user_id, user_events.c.pos)

# --- transparency log (migration 0002) ---

tlog_state = Table(
    "tlog_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("next_index", BigInteger, nullable=False),
    Column("vkey", Text, nullable=True),
)

tlog_entries = Table(
    "tlog_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("body", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary, nullable=False),
    Column("subject", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
)
Index("ix_tlog_entries_subject", tlog_entries.c.subject, tlog_entries.c.idx)

tlog_nodes = Table(
    "tlog_nodes",
    metadata,
    Column("level", Integer, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    PrimaryKeyConstraint("level", "idx"),
)

tlog_checkpoints = Table(
    "tlog_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

tlog_cosignatures = Table(
    "tlog_cosignatures",
    metadata,
    Column("size", BigInteger, nullable=False),
    Column("witness", String(200), nullable=False),
    Column("line", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("size", "witness"),
)

user_salts = Table(
    "user_salts",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("salt", LargeBinary, nullable=False),
)
