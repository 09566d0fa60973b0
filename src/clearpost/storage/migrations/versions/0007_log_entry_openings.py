"""Keep the opening of each log entry's per-entry subject commitment (issue 15).

From entry format version 2 every entry about a person has its own commitment, made with a
fresh nonce; the nonce (and, for a device entry, the device id and keys it binds) is stored
here and handed only to that person's devices with the entry. Older entries have none.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tlog_entries") as batch:
        batch.add_column(sa.Column("opening", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tlog_entries") as batch:
        batch.drop_column("opening")
