"""job leases: jobs are claimed from the table under a heartbeat lease, can be cancelled and deduplicated

Revision ID: 0006_job_leases
Revises: 0005_model_runtime
Create Date: 2026-12-01 23:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_job_leases"
down_revision = "0005_model_runtime"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_jobs_claim", ["status", "id"], unique=False)
        batch_op.create_index("ix_jobs_dedupe", ["workspace_id", "dedupe_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_dedupe")
        batch_op.drop_index("ix_jobs_claim")
        for column in ("dedupe_key", "cancel_requested", "attempts", "lease_expires_at", "lease_owner"):
            batch_op.drop_column(column)
