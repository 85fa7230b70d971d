"""model runtime: the local model file behind each AI result, and an index for daily usage and budgets

Revision ID: 0005_model_runtime
Revises: 0004_sentiment_heads
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_model_runtime"
down_revision = "0004_sentiment_heads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ai_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_file", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_ai_results_created", ["workspace_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ai_results", schema=None) as batch_op:
        batch_op.drop_index("ix_ai_results_created")
        batch_op.drop_column("model_file")
