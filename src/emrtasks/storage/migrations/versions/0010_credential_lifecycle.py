"""Credential lifecycle: rotation with an overlap, disable, delete; the credential change generation

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("previous_secret_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("connections") as batch:
        batch.add_column(sa.Column("previous_token_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("previous_token_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_connections_previous_token_hash"), "connections", ["previous_token_hash"], unique=False
    )
    op.create_table(
        "credential_changes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credential_changes")),
    )


def downgrade() -> None:
    op.drop_table("credential_changes")
    op.drop_index(op.f("ix_connections_previous_token_hash"), table_name="connections")
    with op.batch_alter_table("connections") as batch:
        for name in ("deleted_at", "disabled_at", "previous_token_expires_at", "previous_token_hash"):
            batch.drop_column(name)
    with op.batch_alter_table("clients") as batch:
        for name in ("deleted_at", "disabled_at", "previous_secret_expires_at", "previous_secret_hash"):
            batch.drop_column(name)
