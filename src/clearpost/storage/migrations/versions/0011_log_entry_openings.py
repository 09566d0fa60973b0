"""Issue 15: keep the opening of each log entry's own subject commitment; forget the
display names that were only copies of usernames.

From entry format version 2 every entry about a person has its own commitment, made with a
fresh nonce; the nonce (and, for a device entry, the device id and keys it binds) is stored
here and handed only to that person's devices with the entry. Older entries have none.

Every account's display name was set to its username at registration (there was no way to
choose one), and partners with ``profile:basic`` were shown it; a display name is now the
person's own choice, empty until they set one. ``users.group_adds`` is who may add the
person to a group ("anyone", the default, or "nobody").

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tlog_entries") as batch:
        batch.add_column(sa.Column("opening", sa.LargeBinary, nullable=True))
    op.execute("UPDATE users SET display_name = NULL")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("group_adds", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("group_adds")
    with op.batch_alter_table("tlog_entries") as batch:
        batch.drop_column("opening")
