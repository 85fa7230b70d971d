"""sales and marketing: account owners, and NPS advocacy and recovery

Accounts get an owner (the person a detractor's follow-up is drafted for). ``nps_advocacy`` holds, per promoter or
detractor who got a draft, who sends it and whether an approved draft asked them (copilot/tasks/nps_advocacy.py).

Revision ID: 0011_sales_marketing
Revises: 0010_reply_library
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_sales_marketing"
down_revision = "0010_reply_library"
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if "owner" not in _columns("accounts"):
        with op.batch_alter_table("accounts", schema=None) as batch_op:
            batch_op.add_column(sa.Column("owner", sa.String(length=120), nullable=True))
    op.create_table(
        "nps_advocacy",
        sa.Column("response_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=True),
        sa.Column("route", sa.String(length=16), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("asked_result_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["asked_result_id"], ["ai_results.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["response_id"], ["nps_responses.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("response_id", name="uq_nps_advocacy_response"),
    )
    with op.batch_alter_table("nps_advocacy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nps_advocacy_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_nps_advocacy_owner", ["workspace_id", "owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nps_advocacy", schema=None) as batch_op:
        batch_op.drop_index("ix_nps_advocacy_owner")
        batch_op.drop_index(batch_op.f("ix_nps_advocacy_workspace_id"))
    op.drop_table("nps_advocacy")
    if "owner" in _columns("accounts"):
        with op.batch_alter_table("accounts", schema=None) as batch_op:
            batch_op.drop_column("owner")
