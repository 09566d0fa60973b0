"""Issue 17: the key directory.

``keydir_leaves`` is the prefix tree (VRF index -> commitment, never changed once inserted),
``keydir_versions`` what the server needs to prove a leaf (label, VRF proof, opening, value),
``keydir_epochs`` each published root and the log entry that carries it. ``keydir_dirty``
lists the accounts whose devices changed since the last epoch, and ``keydir_subjects`` maps
the private index of a person's log entries to the person, so the publisher can count each
person's entries under their ``log:`` label. Existing salts are mapped here.

Revision ID: 0013
Revises: 0012
"""

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keydir_epochs",
        sa.Column("epoch", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("root", sa.LargeBinary, nullable=False),
        sa.Column("log_index", sa.BigInteger, nullable=False),
        sa.Column("through", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("proof", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "keydir_leaves",
        sa.Column("idx", sa.LargeBinary, primary_key=True),
        sa.Column("commitment", sa.LargeBinary, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_keydir_leaves_epoch", "keydir_leaves", ["epoch"])
    op.create_table(
        "keydir_versions",
        sa.Column("label", sa.String(300), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("idx", sa.LargeBinary, nullable=False),
        sa.Column("vrf_proof", sa.LargeBinary, nullable=False),
        sa.Column("opening", sa.LargeBinary, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("label", "version"),
    )
    op.create_table(
        "keydir_dirty",
        sa.Column("user_id", sa.String(300), primary_key=True),
        sa.Column("since", sa.BigInteger, nullable=False),
    )
    subjects = op.create_table(
        "keydir_subjects",
        sa.Column("subject", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(300), nullable=False),
    )
    op.create_index("ix_keydir_subjects_user", "keydir_subjects", ["user_id"])
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT user_id, salt FROM user_salts")).all()
    if rows:  # the version-1 commitment: SHA-256(salt || user id), as core/tlog/entries.py
        op.bulk_insert(
            subjects,
            [
                {"subject": hashlib.sha256(bytes(s) + u.encode()).hexdigest(), "user_id": u}
                for u, s in rows
            ],
        )
    # every account with devices gets its first version at the first epoch
    op.execute(
        "INSERT INTO keydir_dirty (user_id, since) "
        "SELECT DISTINCT user_id, 0 FROM devices WHERE device_keys IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_index("ix_keydir_subjects_user", "keydir_subjects")
    op.drop_table("keydir_subjects")
    op.drop_table("keydir_dirty")
    op.drop_table("keydir_versions")
    op.drop_index("ix_keydir_leaves_epoch", "keydir_leaves")
    op.drop_table("keydir_leaves")
    op.drop_table("keydir_epochs")
