"""paper_event.previous: an update's paper values before the change (issue 17)

Matching sends an updated paper only through rules whose verdict turned from false to true
because of the change, so the event keeps what the paper looked like before it. Events written
before this revision have none; matching rebuilds their previous values from `changes`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paper_event") as batch:
        batch.add_column(sa.Column("previous", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("paper_event") as batch:
        batch.drop_column("previous")
