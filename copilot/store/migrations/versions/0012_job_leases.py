"""job leases across processes: one queued job per dedupe key (enforced by the database), and who finished a job

Revision ID: 0012_job_leases
Revises: 0011_sales_marketing
Create Date: 2026-12-03 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_job_leases"
down_revision = "0011_sales_marketing"
branch_labels = None
depends_on = None

QUEUED_WITH_KEY = "status = 'queued' AND dedupe_key IS NOT NULL"


def upgrade() -> None:
    # Two processes may have queued the same key before the database enforced it: keep the oldest of each.
    op.execute(
        "UPDATE jobs SET status = 'cancelled', error = 'a duplicate of an older queued job with the same key' "
        f"WHERE {QUEUED_WITH_KEY} AND id NOT IN (SELECT min(id) FROM jobs WHERE {QUEUED_WITH_KEY} "
        "GROUP BY workspace_id, dedupe_key)"
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finished_by", sa.String(length=120), nullable=True))
    op.create_index(
        "uq_jobs_queued_dedupe",
        "jobs",
        ["workspace_id", "dedupe_key"],
        unique=True,
        sqlite_where=sa.text(QUEUED_WITH_KEY),
        postgresql_where=sa.text(QUEUED_WITH_KEY),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_queued_dedupe", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("finished_by")
