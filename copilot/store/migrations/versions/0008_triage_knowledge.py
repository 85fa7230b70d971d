"""triage and the knowledge loop: label sets, ticket topics and queues, topic heads, record-change events

Revision ID: 0008_triage_knowledge
Revises: 0007_web_sessions
Create Date: 2026-12-02 00:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_triage_knowledge"
down_revision = "0007_web_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_events",
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=True),
        sa.Column(
            "status",
            sa.Enum("pending", "delivered", "failed", name="deliverystatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbound_events_subject", ["workspace_id", "subject_kind", "subject_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_outbound_events_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "triage_heads",
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
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
        sa.UniqueConstraint("workspace_id", name="uq_triage_heads_workspace"),
    )
    with op.batch_alter_table("triage_heads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_triage_heads_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "triage_labels",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("queue", sa.String(length=80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "name", name="uq_triage_labels_name"),
    )
    with op.batch_alter_table("triage_labels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_triage_labels_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "ticket_routings",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("queue", sa.String(length=80), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("set_by", sa.String(length=200), nullable=False),
        sa.Column("ai_result_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ai_result_id"], ["ai_results.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("ticket_id", name="uq_ticket_routings_ticket"),
    )
    with op.batch_alter_table("ticket_routings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_routings_ai_result_id"), ["ai_result_id"], unique=False)
        batch_op.create_index("ix_ticket_routings_topic", ["workspace_id", "topic"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_routings_workspace_id"), ["workspace_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ticket_routings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_routings_workspace_id"))
        batch_op.drop_index("ix_ticket_routings_topic")
        batch_op.drop_index(batch_op.f("ix_ticket_routings_ai_result_id"))

    op.drop_table("ticket_routings")
    with op.batch_alter_table("triage_labels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triage_labels_workspace_id"))

    op.drop_table("triage_labels")
    with op.batch_alter_table("triage_heads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_triage_heads_workspace_id"))

    op.drop_table("triage_heads")
    with op.batch_alter_table("outbound_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_events_workspace_id"))
        batch_op.drop_index("ix_outbound_events_subject")

    op.drop_table("outbound_events")
