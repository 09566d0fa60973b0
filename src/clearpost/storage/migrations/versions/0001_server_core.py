"""Server core: accounts, devices and keys, conversations, messages, to-device, events.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO stream (id, pos) VALUES (1, 0)")
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "devices",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("curve25519", sa.String(64), nullable=True),
        sa.Column("ed25519", sa.String(64), nullable=True),
        sa.Column("device_keys", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("user_id", "device_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.user_id"], ondelete="CASCADE"),
    )
    op.create_table(
        "one_time_keys",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("key_json", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("user_id", "device_id", "key_id"),
    )
    op.create_index("ix_otk_unclaimed", "one_time_keys", ["user_id", "device_id", "claimed_at"])
    op.create_table(
        "fallback_keys",
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("device_id", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("key_json", sa.Text, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "device_id"),
    )
    op.create_table(
        "conversations",
        sa.Column("conversation_id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("direct_key", sa.String(100), nullable=True, unique=True),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("from_seq", sa.BigInteger, nullable=False),
        sa.Column("to_seq", sa.BigInteger, nullable=True),
        sa.Column("joined_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_memberships_user", "memberships", ["user_id", "to_seq"])
    op.create_index("ix_memberships_conv", "memberships", ["conversation_id", "to_seq"])
    op.create_table(
        "messages",
        sa.Column("pos", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("sender_user", sa.String(40), nullable=False),
        sa.Column("sender_device", sa.String(16), nullable=False),
        sa.Column("txn_id", sa.String(64), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("sent_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_messages_conv_seq"),
        sa.UniqueConstraint("sender_user", "sender_device", "txn_id", name="uq_messages_txn"),
    )
    op.create_table(
        "to_device",
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.Column("target_user", sa.String(40), nullable=False),
        sa.Column("target_device", sa.String(16), nullable=False),
        sa.Column("sender_user", sa.String(40), nullable=False),
        sa.Column("sender_device", sa.String(16), nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("target_user", "target_device", "pos"),
    )
    op.create_table(
        "to_device_txns",
        sa.Column("sender_user", sa.String(40), nullable=False),
        sa.Column("sender_device", sa.String(16), nullable=False),
        sa.Column("txn_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("sender_user", "sender_device", "txn_id"),
    )
    op.create_table(
        "user_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("pos", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_user_events_user_pos", "user_events", ["user_id", "pos"])


def downgrade() -> None:
    for table in (
        "user_events",
        "to_device_txns",
        "to_device",
        "messages",
        "memberships",
        "conversations",
        "fallback_keys",
        "one_time_keys",
        "devices",
        "users",
        "stream",
    ):
        op.drop_table(table)
