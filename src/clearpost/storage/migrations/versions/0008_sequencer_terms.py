"""Fence the log sequencer: a one-row role table, the history of terms, and the term
that wrote each checkpoint.

After a PostgreSQL restart the sequencer's advisory lock was gone while the process went
on integrating, so two processes could write tiles and checkpoints at once. Now the
process that takes the role starts a new term in ``tlog_sequencer``, and every
integration locks that row and checks the term in the transaction that writes.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tlog_sequencer",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=True),
    )
    op.execute("INSERT INTO tlog_sequencer (id, term) VALUES (1, 0)")
    op.create_table(
        "tlog_sequencer_terms",
        sa.Column("term", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
    )
    op.add_column("tlog_checkpoints", sa.Column("term", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tlog_checkpoints") as batch:
        batch.drop_column("term")
    op.drop_table("tlog_sequencer_terms")
    op.drop_table("tlog_sequencer")
