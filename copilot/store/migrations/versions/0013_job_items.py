"""job items: each item of a bulk job recorded as done in its own transaction (items run in parallel)

Revision ID: 0013_job_items
Revises: 0012_job_leases
Create Date: 2026-12-03 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_job_items"
down_revision = "0012_job_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("ai_result_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["ai_result_id"], ["ai_results.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "item", name="uq_job_items_item"),
    )


def downgrade() -> None:
    op.drop_table("job_items")
