"""in-email feedback, author mutes/follows, recommendations (issue 13)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 13:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.String(length=200), nullable=False),
        sa.Column("label", sa.String(length=10), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("topic_id", sa.Integer(), nullable=True),
        sa.Column("recommended", sa.Boolean(), nullable=False),
        sa.Column("via", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["paper_id"], ["paper.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["rule_id"], ["rule.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["topic_id"], ["topic.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "paper_id", name="uq_feedback_subscriber_paper"),
    )
    op.create_table(
        "author_pref",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("author_key", sa.String(length=300), nullable=False),
        sa.Column("author_name", sa.String(length=300), nullable=False),
        sa.Column("hf_id", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("paper_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["rule.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "author_key", name="uq_author_pref_subscriber_key"),
    )
    with op.batch_alter_table("author_pref", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_author_pref_subscriber_id"), ["subscriber_id"], unique=False
        )
    op.create_table(
        "feedback_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.String(length=200), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("use_key", sa.String(length=300), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "use_key", name="uq_feedback_event_use"),
    )
    op.create_table(
        "recommendation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("paper_id", sa.String(length=200), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["delivery.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["paper_id"], ["paper.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "subscriber_id", "paper_id", name="uq_recommendation_subscriber_paper"
        ),
    )
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.create_index("ix_recommendation_delivery", ["delivery_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.drop_index("ix_recommendation_delivery")
    op.drop_table("recommendation")
    op.drop_table("feedback_event")
    with op.batch_alter_table("author_pref", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_author_pref_subscriber_id"))
    op.drop_table("author_pref")
    op.drop_table("feedback")
