"""source.display_name: what subscribers read instead of the internal name (issue 17)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.add_column(
            sa.Column("display_name", sa.String(length=200), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("source") as batch:
        batch.drop_column("display_name")
