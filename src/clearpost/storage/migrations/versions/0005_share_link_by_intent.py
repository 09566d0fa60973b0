"""Find a share intent's click link by the intent (``GET /v1/me/share-intents``).

Without this index each pending intent's link was looked up by scanning every link ever
made.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_share_links_intent", "share_links", ["intent_id"])


def downgrade() -> None:
    op.drop_index("ix_share_links_intent", "share_links")
