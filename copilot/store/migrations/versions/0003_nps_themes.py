"""nps themes: saved theme models and per-response assignments

Revision ID: 0003_nps_themes
Revises: 0002
Create Date: 2026-11-22 21:56:49.760236
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_nps_themes"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nps_theme_runs",
        sa.Column("ai_result_id", sa.Integer(), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
        sa.Column("dimensions", sa.Integer(), nullable=False),
        sa.Column("centroids", sa.LargeBinary(), nullable=False),
        sa.Column("theme_of", sa.JSON(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ai_result_id"], ["ai_results.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nps_theme_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nps_theme_runs_ai_result_id"), ["ai_result_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nps_theme_runs_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "nps_theme_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("theme", sa.Integer(), nullable=False),
        sa.Column("sentences", sa.Integer(), nullable=False),
        sa.Column("sentiment", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["response_id"], ["nps_responses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["nps_theme_runs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "response_id", "theme", name="uq_nps_theme_assignments"),
    )
    with op.batch_alter_table("nps_theme_assignments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nps_theme_assignments_response_id"), ["response_id"], unique=False)
        batch_op.create_index("ix_nps_theme_assignments_theme", ["run_id", "theme"], unique=False)
        batch_op.create_index(batch_op.f("ix_nps_theme_assignments_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nps_theme_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nps_theme_assignments_workspace_id"))
        batch_op.drop_index("ix_nps_theme_assignments_theme")
        batch_op.drop_index(batch_op.f("ix_nps_theme_assignments_response_id"))

    op.drop_table("nps_theme_assignments")
    with op.batch_alter_table("nps_theme_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_nps_theme_runs_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_nps_theme_runs_ai_result_id"))

    op.drop_table("nps_theme_runs")
