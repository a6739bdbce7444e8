"""connection credentials and EMR directories

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "emr_directories",
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("users", sa.JSON(), nullable=False),
        sa.Column("call_types", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name=op.f("fk_emr_directories_connection_id_connections")
        ),
        sa.PrimaryKeyConstraint("connection_id", name=op.f("pk_emr_directories")),
    )
    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credentials", sa.Text(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("connections", schema=None) as batch_op:
        batch_op.drop_column("credentials")

    op.drop_table("emr_directories")
