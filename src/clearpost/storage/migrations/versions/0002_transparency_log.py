"""Transparency log: entries, perfect-subtree node hashes, checkpoints, cosignatures, salts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tlog_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_index", sa.BigInteger, nullable=False),
        sa.Column("vkey", sa.Text, nullable=True),
    )
    op.execute("INSERT INTO tlog_state (id, next_index) VALUES (1, 0)")
    op.create_table(
        "tlog_entries",
        sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_tlog_entries_subject", "tlog_entries", ["subject", "idx"])
    op.create_table(
        "tlog_nodes",
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "tlog_checkpoints",
        sa.Column("size", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tlog_cosignatures",
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("witness", sa.String(200), nullable=False),
        sa.Column("line", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("size", "witness"),
    )
    op.create_table(
        "user_salts",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("salt", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "user_salts",
        "tlog_cosignatures",
        "tlog_checkpoints",
        "tlog_nodes",
        "tlog_entries",
        "tlog_state",
    ):
        op.drop_table(table)
