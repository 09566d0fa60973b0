"""Issue 16: user ids carry the deployment's server name (``@alice:clearpost.localhost``).

A ``deployment`` row records the server name on first start (``server/services/runtime.py``
binds it and refuses another one later), and every column holding a user id grows to
Matrix's 255 characters (a direct conversation's key holds two).

A database that already holds accounts is refused, not rewritten: its device keys are
signed over the old user ids and its log entries commit to them, so rewriting the ids would
leave keys that no longer verify and commitments nobody can open. The message says what to
do instead.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from clearpost.core.errors import ClearpostError

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

USER_ID_COLUMNS = {
    "users": ["user_id"],
    "devices": ["user_id"],
    "one_time_keys": ["user_id"],
    "fallback_keys": ["user_id"],
    "conversations": ["created_by"],
    "memberships": ["user_id"],
    "messages": ["sender_user"],
    "to_device": ["target_user", "sender_user"],
    "to_device_txns": ["sender_user"],
    "user_events": ["user_id"],
    "user_salts": ["user_id"],
    "oauth_grants": ["user_id"],
    "oauth_codes": ["user_id"],
    "oauth_tokens": ["user_id"],
    "web_sessions": ["user_id"],
    "share_intents": ["user_id"],
}
REFUSAL = (
    "this database holds accounts made before Clearpost 0.3, whose user ids have no server "
    "name; their device keys and log entries are signed over those ids, so they cannot be "
    "rewritten. Keep running the previous Clearpost version on this database, or start this "
    "version on a new database (another --data-dir or --database)"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM users LIMIT 1")).first() is not None:
        raise ClearpostError(REFUSAL, code="database_predates_server_names")
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("server_name", sa.String(200), nullable=True),
    )
    op.execute("INSERT INTO deployment (id) VALUES (1)")
    for table, columns in USER_ID_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, type_=sa.String(255), existing_type=sa.String(40))
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("direct_key", type_=sa.String(511), existing_type=sa.String(100))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("direct_key", type_=sa.String(100), existing_type=sa.String(511))
    for table, columns in USER_ID_COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(column, type_=sa.String(40), existing_type=sa.String(255))
    op.drop_table("deployment")
