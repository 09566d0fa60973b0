"""Roll-up reports: a ``kind`` on ledger rows and reports ("period" or "rollup").

A roll-up spends its own epsilon once per window, so the ledger's unique constraint that
makes a second release impossible is now on (partner, kind, window start): a roll-up may
start on the same day as a period. Existing rows are periods. SQLite cannot change a
constraint in place, so the ledger is rebuilt (batch mode).

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("privacy_ledger") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="period"))
        batch.drop_constraint("uq_privacy_ledger_period", type_="unique")
        batch.create_unique_constraint(
            "uq_privacy_ledger_period", ["partner_id", "kind", "period_start"]
        )
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False, server_default="period"))


def downgrade() -> None:
    # roll-ups have no place in the old tables: their reports and ledger rows go (their
    # log entries stay in the log, which only grows)
    op.execute("DELETE FROM reports WHERE kind <> 'period'")
    op.execute("DELETE FROM privacy_ledger WHERE kind <> 'period'")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("privacy_ledger") as batch:
        batch.drop_constraint("uq_privacy_ledger_period", type_="unique")
        batch.create_unique_constraint("uq_privacy_ledger_period", ["partner_id", "period_start"])
        batch.drop_column("kind")
