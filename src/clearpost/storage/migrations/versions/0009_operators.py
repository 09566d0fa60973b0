"""Operators: suspended accounts and partners, and single-use registration invites.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("suspended_at", sa.BigInteger(), nullable=True))
    op.add_column("partners", sa.Column("suspended_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "invites",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("invites")
    with op.batch_alter_table("partners") as batch:
        batch.drop_column("suspended_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("suspended_at")
