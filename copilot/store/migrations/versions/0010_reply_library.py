"""reply library: approved replies, scrubbed of personal data and case facts, shared by the whole workspace

Revision ID: 0010_reply_library
Revises: 0009_insights
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_reply_library"
down_revision = "0009_insights"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reply_library",
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("source_ai_result_id", sa.Integer(), nullable=True),
        sa.Column("approved_by", sa.String(length=200), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_ai_result_id"], ["ai_results.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "source_ai_result_id", name="uq_reply_library_source"),
    )
    with op.batch_alter_table("reply_library", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reply_library_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reply_library", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reply_library_workspace_id"))
    op.drop_table("reply_library")
