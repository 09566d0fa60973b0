"""Table definitions used by the stores.

The migrations in ``migrations/versions`` build existing databases up to these tables; an
empty database is created from them directly (``create_fresh``), as Synapse does with its
full-schema snapshots. ``tests/contract/test_schema.py`` checks that both ways give the
same schema and rows on SQLite and PostgreSQL, so the two cannot drift apart.

Stream positions (``pos``) come from the single-row ``stream`` table, bumped inside each
writing transaction. Because that row is locked until commit, positions become visible in
order on PostgreSQL too, so a sync cursor never skips a row that commits late.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
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
    text,
)

metadata = MetaData()

USER_ID_LENGTH = 255
"""Columns holding user ids (``@<username>:<server_name>``, Matrix's bound; migration 0012)."""

deployment = Table(  # one row: what is fixed when a deployment is created (migration 0012)
    "deployment",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("server_name", String(200), nullable=True),
)

stream = Table(
    "stream",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("pos", BigInteger, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("user_id", String(USER_ID_LENGTH), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("display_name", String(100), nullable=True),  # migration 0003
    Column("suspended_at", BigInteger, nullable=True),  # migration 0009
    Column("group_adds", String(10), nullable=True),  # who may add me to groups (0011)
)

devices = Table(
    "devices",
    metadata,
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
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
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
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
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
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
    Column("created_by", String(USER_ID_LENGTH), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("direct_key", String(2 * USER_ID_LENGTH + 1), nullable=True, unique=True),
)

memberships = Table(
    "memberships",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(40), nullable=False),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
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
    Column("sender_user", String(USER_ID_LENGTH), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("txn_id", String(64), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("sent_at", BigInteger, nullable=False),
    UniqueConstraint("conversation_id", "seq", name="uq_messages_conv_seq"),
    UniqueConstraint("sender_user", "sender_device", "txn_id", name="uq_messages_txn"),
)
# A sync reads a member's conversations from its cursor (a stream position) on: with this
# index it reads only what is new in each, not each one's whole history (migration 0007).
Index("ix_messages_conv_pos", messages.c.conversation_id, messages.c.pos)

to_device = Table(
    "to_device",
    metadata,
    Column("pos", BigInteger, nullable=False),
    Column("target_user", String(USER_ID_LENGTH), nullable=False),
    Column("target_device", String(16), nullable=False),
    Column("sender_user", String(USER_ID_LENGTH), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("envelope", Text, nullable=False),
    PrimaryKeyConstraint("target_user", "target_device", "pos"),
)

to_device_txns = Table(
    "to_device_txns",
    metadata,
    Column("sender_user", String(USER_ID_LENGTH), nullable=False),
    Column("sender_device", String(16), nullable=False),
    Column("txn_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("sender_user", "sender_device", "txn_id"),
)

user_events = Table(
    "user_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
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
    Column("opening", LargeBinary, nullable=True),  # per-entry commitment's opening (0011)
)
Index("ix_tlog_entries_subject", tlog_entries.c.subject, tlog_entries.c.idx)

tlog_tiles = Table(  # node hashes, eight tree levels per row (core/tlog/tiles.py)
    "tlog_tiles",
    metadata,
    Column("level", Integer, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
    PrimaryKeyConstraint("level", "idx"),
)

tlog_checkpoints = Table(
    "tlog_checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("term", BigInteger, nullable=True),  # the sequencer term that wrote it (0008 on)
)

# --- the sequencer role (migration 0008) ---

tlog_sequencer = Table(  # one row: who holds the role now; the fence locks it
    "tlog_sequencer",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("term", BigInteger, nullable=False),
    Column("holder", String(200), nullable=True),
    Column("started_at", BigInteger, nullable=True),
)

tlog_sequencer_terms = Table(  # every term ever begun, and by which process
    "tlog_sequencer_terms",
    metadata,
    Column("term", BigInteger, primary_key=True, autoincrement=False),
    Column("holder", String(200), nullable=False),
    Column("started_at", BigInteger, nullable=False),
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
    Column("user_id", String(USER_ID_LENGTH), primary_key=True),
    Column("salt", LargeBinary, nullable=False),
)

# --- partner platform (migration 0003) ---

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", LargeBinary, nullable=False),
)

partners = Table(
    "partners",
    metadata,
    Column("partner_id", String(32), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("suspended_at", BigInteger, nullable=True),  # migration 0009
)

agreements = Table(
    "agreements",
    metadata,
    Column("partner_id", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("partner_id", "version"),
)

scope_catalogues = Table(
    "scope_catalogues",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
    Column("log_index", BigInteger, nullable=False),
)

oauth_grants = Table(
    "oauth_grants",
    metadata,
    Column("grant_id", String(40), primary_key=True),
    Column("partner_id", String(32), nullable=False),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("grant_log_index", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("revoke_log_index", BigInteger, nullable=True),
    Column("last_access_at", BigInteger, nullable=True),
)
Index("ix_oauth_grants_user", oauth_grants.c.user_id, oauth_grants.c.partner_id)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("grant_id", String(40), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", String(200), nullable=False),
    Column("challenge", String(128), nullable=False),
    Column("challenge_method", String(10), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False),
)

oauth_tokens = Table(
    "oauth_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("kind", String(10), nullable=False),
    Column("grant_id", String(40), nullable=True),
    Column("partner_id", String(32), nullable=False),
    Column("user_id", String(USER_ID_LENGTH), nullable=True),
    Column("scope", String(200), nullable=False),
    Column("issued_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False),
    Column("used", Boolean, nullable=False),
)
Index("ix_oauth_tokens_grant", oauth_tokens.c.grant_id)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("session_hash", String(64), primary_key=True),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

share_intents = Table(
    "share_intents",
    metadata,
    Column("intent_id", String(40), primary_key=True),
    Column("partner_id", String(32), nullable=False),
    Column("user_id", String(USER_ID_LENGTH), nullable=False),
    Column("title", String(200), nullable=False),
    Column("url", Text, nullable=False),
    Column("image_url", Text, nullable=True),
    Column("description", String(1000), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
    Column("recipients", Integer, nullable=True),
    Column("log_index", BigInteger, nullable=False),
)
Index("ix_share_intents_user", share_intents.c.user_id, share_intents.c.created_at)
Index("ix_share_intents_partner_created", share_intents.c.partner_id, share_intents.c.created_at)
Index(
    "ix_share_intents_partner_completed",
    share_intents.c.partner_id,
    share_intents.c.completed_at,
)

share_links = Table(
    "share_links",
    metadata,
    Column("token", String(40), primary_key=True),
    Column("intent_id", String(40), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_share_links_partner_created", share_links.c.partner_id, share_links.c.created_at)
Index("ix_share_links_intent", share_links.c.intent_id)

clicks = Table(
    "clicks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token", String(40), nullable=False),
    Column("partner_id", String(32), nullable=False),
    Column("at", BigInteger, nullable=False),
)
Index("ix_clicks_partner_at", clicks.c.partner_id, clicks.c.at)

# --- partner reports (migration 0004) ---

privacy_ledger = Table(
    "privacy_ledger",
    metadata,
    Column("report_id", String(40), primary_key=True),
    Column("partner_id", String(32), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("epsilon", Float, nullable=False),
    Column("spent_at", BigInteger, nullable=False),
    Column("kind", String(10), nullable=False, server_default="period"),
    UniqueConstraint("partner_id", "kind", "period_start", name="uq_privacy_ledger_period"),
)

reports = Table(
    "reports",
    metadata,
    Column("report_id", String(40), primary_key=True),
    Column("partner_id", String(32), nullable=False),
    Column("period_start", BigInteger, nullable=False),
    Column("period_end", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("report_hash", String(64), nullable=False),
    Column("signature", String(100), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("released_at", BigInteger, nullable=False),
    Column("kind", String(10), nullable=False, server_default="period"),
)
Index("ix_reports_partner", reports.c.partner_id, reports.c.period_start)

# --- operators (migration 0009) ---

invites = Table(  # single-use registration invites; only the token's SHA-256 is kept
    "invites",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
    Column("note", String(200), nullable=True),
)


# --- key directory (migration 0013) ---

keydir_epochs = Table(  # one row per published epoch; its root is also a log entry
    "keydir_epochs",
    metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("through", BigInteger, nullable=False),  # log entries [0, through) are counted
    Column("created_at", BigInteger, nullable=False),
    Column("proof", LargeBinary, nullable=False),  # the update proof from the previous root
)

keydir_leaves = Table(  # the prefix tree's leaves, never changed once inserted
    "keydir_leaves",
    metadata,
    Column("idx", LargeBinary, primary_key=True),  # 32 bytes of the VRF output
    Column("commitment", LargeBinary, nullable=False),
    Column("epoch", BigInteger, nullable=False),
)
Index("ix_keydir_leaves_epoch", keydir_leaves.c.epoch)

keydir_versions = Table(  # what the server needs to prove a leaf: label, value, opening
    "keydir_versions",
    metadata,
    Column("label", String(300), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("idx", LargeBinary, nullable=False),
    Column("vrf_proof", LargeBinary, nullable=False),
    Column("opening", LargeBinary, nullable=False),
    Column("value", LargeBinary, nullable=False),
    PrimaryKeyConstraint("label", "version"),
)

keydir_dirty = Table(  # accounts whose devices changed since the last epoch
    "keydir_dirty",
    metadata,
    Column("user_id", String(300), primary_key=True),
    Column("since", BigInteger, nullable=False),
)

keydir_subjects = Table(  # the private index of a person's log entries -> the person
    "keydir_subjects",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("user_id", String(300), nullable=False),
)
Index("ix_keydir_subjects_user", keydir_subjects.c.user_id)


SEED_ROWS: list[tuple[Table, dict[str, int]]] = [
    (stream, {"id": 1, "pos": 0}),
    (tlog_state, {"id": 1, "next_index": 0}),
    (tlog_sequencer, {"id": 1, "term": 0}),
    (deployment, {"id": 1}),
]
"""The single-row tables' first rows (the migrations insert the same)."""


def create_fresh(conn: Connection, revision: str) -> None:
    """Create every table, index and first row in an empty database, and record
    ``revision`` the way Alembic does, so later migrations apply on top as usual."""
    metadata.create_all(conn)
    for table, row in SEED_ROWS:
        conn.execute(table.insert().values(**row))
    conn.exec_driver_sql(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
