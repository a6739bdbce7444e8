"""Link: link and public tokens, deployment app configs, clients' allowed origins

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "client_origins",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("origin", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_client_origins_client_id_clients")
        ),
        sa.PrimaryKeyConstraint("client_id", "origin", name=op.f("pk_client_origins")),
    )
    op.create_table(
        "link_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("org_id", sa.String(length=255), nullable=False),
        sa.Column("emr", sa.String(length=40), nullable=True),
        sa.Column("instance_domain", sa.String(length=255), nullable=True),
        sa.Column("reference_id", sa.String(length=255), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("connection_id", sa.String(length=40), nullable=True),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("oauth_state_hash", sa.String(length=64), nullable=True),
        sa.Column("oauth_session", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name=op.f("fk_link_tokens_client_id_clients")),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_link_tokens_connection_id_connections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_link_tokens_token_hash")),
        sa.UniqueConstraint("oauth_state_hash", name=op.f("uq_link_tokens_oauth_state_hash")),
    )
    op.create_index(op.f("ix_link_tokens_client_id"), "link_tokens", ["client_id"], unique=False)
    op.create_table(
        "public_tokens",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("link_token_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_public_tokens_client_id_clients")
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_public_tokens_connection_id_connections")
        ),
        sa.ForeignKeyConstraint(
            ["link_token_id"], ["link_tokens.id"], name=op.f("fk_public_tokens_link_token_id_link_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_public_tokens_token_hash")),
    )
    op.create_index(op.f("ix_public_tokens_link_token_id"), "public_tokens", ["link_token_id"], unique=False)
    op.create_table(
        "deployment_apps",
        sa.Column("emr", sa.String(length=40), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("emr", name=op.f("pk_deployment_apps")),
    )


def downgrade() -> None:
    op.drop_table("deployment_apps")
    op.drop_index(op.f("ix_public_tokens_link_token_id"), table_name="public_tokens")
    op.drop_table("public_tokens")
    op.drop_index(op.f("ix_link_tokens_client_id"), table_name="link_tokens")
    op.drop_table("link_tokens")
    op.drop_table("client_origins")
