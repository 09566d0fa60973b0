"""Partner reports: the privacy-budget ledger, released reports, and indexes for counting.

The ledger's unique constraint on (partner, period start) is what makes a second release
of a period impossible, also between several server processes on PostgreSQL.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_ledger",
        sa.Column("report_id", sa.String(40), primary_key=True),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("period_end", sa.BigInteger, nullable=False),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("spent_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("partner_id", "period_start", name="uq_privacy_ledger_period"),
    )
    op.create_table(
        "reports",
        sa.Column("report_id", sa.String(40), primary_key=True),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("period_start", sa.BigInteger, nullable=False),
        sa.Column("period_end", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("report_hash", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(100), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("log_index", sa.BigInteger, nullable=False),
        sa.Column("released_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_reports_partner", "reports", ["partner_id", "period_start"])
    # the counting queries read one partner's rows by time
    op.create_index(
        "ix_share_intents_partner_created", "share_intents", ["partner_id", "created_at"]
    )
    op.create_index(
        "ix_share_intents_partner_completed", "share_intents", ["partner_id", "completed_at"]
    )
    op.create_index("ix_share_links_partner_created", "share_links", ["partner_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_share_links_partner_created", "share_links")
    op.drop_index("ix_share_intents_partner_completed", "share_intents")
    op.drop_index("ix_share_intents_partner_created", "share_intents")
    op.drop_index("ix_reports_partner", "reports")
    op.drop_table("reports")
    op.drop_table("privacy_ledger")
