"""sentiment heads: a workspace's own sentiment classifier weights

Revision ID: 0004_sentiment_heads
Revises: 0003_nps_themes
Create Date: 2026-11-29 19:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_sentiment_heads"
down_revision = "0003_nps_themes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentiment_heads",
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_sha256", sa.String(length=64), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("label_counts", sa.JSON(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("trained_by", sa.String(length=200), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", name="uq_sentiment_heads_workspace"),
    )
    with op.batch_alter_table("sentiment_heads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sentiment_heads_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sentiment_heads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sentiment_heads_workspace_id"))
    op.drop_table("sentiment_heads")
