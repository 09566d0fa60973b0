"""Partner platform: partners, agreements, scope catalogues, OAuth codes/grants/tokens,
web sessions, share intents, click links and clicks.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.add_column("users", sa.Column("display_name", sa.String(100), nullable=True))
    op.create_table(
        "partners",
        sa.Column("partner_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "agreements",
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("log_index", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "version"),
    )
    op.create_table(
        "scope_catalogues",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("log_index", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "oauth_grants",
        sa.Column("grant_id", sa.String(40), primary_key=True),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("grant_log_index", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
        sa.Column("revoke_log_index", sa.BigInteger, nullable=True),
        sa.Column("last_access_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_oauth_grants_user", "oauth_grants", ["user_id", "partner_id"])
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("challenge", sa.String(128), nullable=False),
        sa.Column("challenge_method", sa.String(10), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )
    op.create_table(
        "oauth_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("grant_id", sa.String(40), nullable=True),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("issued_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False),
    )
    op.create_index("ix_oauth_tokens_grant", "oauth_tokens", ["grant_id"])
    op.create_table(
        "web_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "share_intents",
        sa.Column("intent_id", sa.String(40), primary_key=True),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("image_url", sa.Text, nullable=True),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("completed_at", sa.BigInteger, nullable=True),
        sa.Column("recipients", sa.Integer, nullable=True),
        sa.Column("log_index", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_share_intents_user", "share_intents", ["user_id", "created_at"])
    op.create_table(
        "share_links",
        sa.Column("token", sa.String(40), primary_key=True),
        sa.Column("intent_id", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "clicks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(40), nullable=False),
        sa.Column("partner_id", sa.String(32), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_clicks_partner_at", "clicks", ["partner_id", "at"])


def downgrade() -> None:
    for table in (
        "clicks",
        "share_links",
        "share_intents",
        "web_sessions",
        "oauth_tokens",
        "oauth_codes",
        "oauth_grants",
        "scope_catalogues",
        "agreements",
        "partners",
        "server_secrets",
    ):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("display_name")
