"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 16:43:05.731110
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "accounts",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=200), nullable=True),
        sa.Column("industry", sa.String(length=100), nullable=True),
        sa.Column("segment", sa.String(length=50), nullable=True),
        sa.Column("country", sa.String(length=80), nullable=True),
        sa.Column("plan", sa.String(length=80), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_accounts_external_id"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "ai_results",
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "pending",
                "approved",
                "edited",
                "rejected",
                "stale",
                "sent",
                "completed",
                "failed",
                name="aistatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("final_text", sa.Text(), nullable=True),
        sa.Column("prompt_name", sa.String(length=128), nullable=True),
        sa.Column("prompt_version", sa.String(length=64), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("input_ids", sa.JSON(), nullable=False),
        sa.Column("source_ids", sa.JSON(), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("guard_verdicts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ai_results", schema=None) as batch_op:
        batch_op.create_index("ix_ai_results_status", ["workspace_id", "status"], unique=False)
        batch_op.create_index("ix_ai_results_subject", ["workspace_id", "subject_kind", "subject_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ai_results_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column(
            "role",
            sa.Enum("agent", "rep", "marketing", "admin", name="role", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_prefix"), ["prefix"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "jobs",
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "succeeded", "failed", name="jobstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "kb_articles",
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_kb_articles_external_id"),
    )
    with op.batch_alter_table("kb_articles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_kb_articles_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("ai_result_id", sa.Integer(), nullable=True),
        sa.Column("subject_kind", sa.String(length=32), nullable=True),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("task", sa.String(length=64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("edit_distance", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ai_result_id"],
            ["ai_results.id"],
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_ai_result_id"), ["ai_result_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_audit_ws_at", ["workspace_id", "at"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("title", sa.String(length=120), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_contacts_external_id"),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contacts_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_contacts_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "deals",
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "prospecting",
                "qualification",
                "discovery",
                "proposal",
                "negotiation",
                "closed_won",
                "closed_lost",
                name="dealstage",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner", sa.String(length=120), nullable=True),
        sa.Column("next_step", sa.Text(), nullable=True),
        sa.Column("stage_history", sa.JSON(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_deals_external_id"),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deals_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deals_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "deliveries",
        sa.Column("ai_result_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=500), nullable=False),
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
        sa.ForeignKeyConstraint(
            ["ai_result_id"],
            ["ai_results.id"],
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_ai_result_id"), ["ai_result_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_deliveries_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "calls",
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("participants", sa.JSON(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_calls_external_id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "nps_responses",
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("survey", sa.String(length=120), nullable=True),
        sa.Column("campaign", sa.String(length=120), nullable=True),
        sa.Column("segment", sa.String(length=50), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_nps_responses_external_id"),
    )
    with op.batch_alter_table("nps_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_nps_responses_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nps_responses_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_nps_responses_workspace_id"), ["workspace_id"], unique=False)
        batch_op.create_index("ix_nps_ws_submitted", ["workspace_id", "submitted_at"], unique=False)

    op.create_table(
        "tickets",
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column(
            "status",
            sa.Enum("new", "open", "pending", "solved", "closed", name="ticketstatus", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.Enum("low", "normal", "high", "urgent", name="priority", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum("email", "chat", "phone", "web", "social", name="channel", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("assignee", sa.String(length=120), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_tickets_external_id"),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tickets_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_tickets_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "call_turns",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(length=200), nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "position", name="uq_call_turns_position"),
    )
    with op.batch_alter_table("call_turns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_call_turns_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_call_turns_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column(
            "author_kind",
            sa.Enum("customer", "agent", "internal_note", name="authorkind", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_messages_external_id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_ticket_sent", ["ticket_id", "sent_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_workspace_id"), ["workspace_id"], unique=False)

    op.create_table(
        "notes",
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("deal_id", sa.Integer(), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("author", sa.String(length=200), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("noted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("workspace_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["deal_id"], ["deals.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("workspace_id", "external_id", name="uq_notes_external_id"),
    )
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notes_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_deal_id"), ["deal_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_notes_workspace_id"), ["workspace_id"], unique=False)

    _make_audit_log_append_only()


def _make_audit_log_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    with op.batch_alter_table("notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notes_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_notes_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_notes_deal_id"))
        batch_op.drop_index(batch_op.f("ix_notes_contact_id"))
        batch_op.drop_index(batch_op.f("ix_notes_account_id"))

    op.drop_table("notes")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_workspace_id"))
        batch_op.drop_index("ix_messages_ticket_sent")

    op.drop_table("messages")
    with op.batch_alter_table("call_turns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_turns_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_call_turns_call_id"))

    op.drop_table("call_turns")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_contact_id"))
        batch_op.drop_index(batch_op.f("ix_tickets_account_id"))

    op.drop_table("tickets")
    with op.batch_alter_table("nps_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_nps_ws_submitted")
        batch_op.drop_index(batch_op.f("ix_nps_responses_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_nps_responses_contact_id"))
        batch_op.drop_index(batch_op.f("ix_nps_responses_account_id"))

    op.drop_table("nps_responses")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_calls_deal_id"))
        batch_op.drop_index(batch_op.f("ix_calls_account_id"))

    op.drop_table("calls")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_ai_result_id"))

    op.drop_table("deliveries")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deals_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_deals_account_id"))

    op.drop_table("deals")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contacts_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_contacts_account_id"))

    op.drop_table("contacts")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_ws_at")
        batch_op.drop_index(batch_op.f("ix_audit_events_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_audit_events_ai_result_id"))

    op.drop_table("audit_events")
    with op.batch_alter_table("kb_articles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_kb_articles_workspace_id"))

    op.drop_table("kb_articles")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_workspace_id"))

    op.drop_table("jobs")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_workspace_id"))
        batch_op.drop_index(batch_op.f("ix_api_keys_prefix"))

    op.drop_table("api_keys")
    with op.batch_alter_table("ai_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ai_results_workspace_id"))
        batch_op.drop_index("ix_ai_results_subject")
        batch_op.drop_index("ix_ai_results_status")

    op.drop_table("ai_results")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_workspace_id"))

    op.drop_table("accounts")
    op.drop_table("workspaces")
