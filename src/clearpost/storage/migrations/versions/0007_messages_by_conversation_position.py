"""Read a member's new messages by (conversation, stream position).

A sync asks for the messages of the member's conversations after its cursor, a stream
position. The only index by conversation was (conversation_id, seq), so SQLite read every
message of each conversation and sorted them before applying the cursor: 1 ms a sync with
2,016 messages in a group, 37 ms with 66,505. With this index it reads only the new ones.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_messages_conv_pos", "messages", ["conversation_id", "pos"])


def downgrade() -> None:
    op.drop_index("ix_messages_conv_pos", "messages")
