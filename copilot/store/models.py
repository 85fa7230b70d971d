"""SQLAlchemy 2.0 typed models for the CRM record store and the AI side.

Every row belongs to a workspace. CRM records carry an optional ``external_id``
(the id in the system they were imported from), unique per workspace and kind,
which is what ingest upserts on.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp in UTC on every database (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        return None if value is None else utc(value, keep_offset=True)


def utc(value: datetime, *, keep_offset: bool = False) -> datetime:
    """``value`` made aware: a naive one is taken as UTC; an aware one is converted to UTC, or with ``keep_offset``
    kept as it is (its dates and times stay those of the offset it was written in)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value if keep_offset else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class AuthorKind(str, enum.Enum):
    customer = "customer"
    agent = "agent"
    internal_note = "internal_note"


class TicketStatus(str, enum.Enum):
    new = "new"
    open = "open"
    pending = "pending"
    solved = "solved"
    closed = "closed"


class Priority(str, enum.Enum):
    low = "low"
    normal = "normal"
    high = "high"
    urgent = "urgent"


class Channel(str, enum.Enum):
    email = "email"
    chat = "chat"
    phone = "phone"
    web = "web"
    social = "social"


class DealStage(str, enum.Enum):
    prospecting = "prospecting"
    qualification = "qualification"
    discovery = "discovery"
    proposal = "proposal"
    negotiation = "negotiation"
    closed_won = "closed_won"
    closed_lost = "closed_lost"


class AiStatus(str, enum.Enum):
    pending = "pending"  # waiting for human review
    approved = "approved"
    edited = "edited"  # approved with changes
    rejected = "rejected"
    stale = "stale"  # the record changed after it was produced
    sent = "sent"
    completed = "completed"  # informational output that needs no review
    failed = "failed"
    superseded = "superseded"  # another reply to the same ticket was approved


def _enum(enum_cls: type[enum.Enum]) -> Enum:
    return Enum(enum_cls, native_enum=False, length=32, validate_strings=True)


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class WorkspaceScoped:
    """Columns every workspace-owned row has."""

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class CrmRecord(WorkspaceScoped):
    """A record imported from (or mirrored to) the CRM, addressable by its external id."""

    external_id: Mapped[str | None] = mapped_column(String(128))


def _crm_table_args(table: str) -> tuple[Any, ...]:
    return (UniqueConstraint("workspace_id", "external_id", name=f"uq_{table}_external_id"),)


class Account(CrmRecord, Base):
    __tablename__ = "accounts"
    __table_args__ = _crm_table_args("accounts")

    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str | None] = mapped_column(String(200))
    industry: Mapped[str | None] = mapped_column(String(100))
    segment: Mapped[str | None] = mapped_column(String(50))
    country: Mapped[str | None] = mapped_column(String(80))
    plan: Mapped[str | None] = mapped_column(String(80))
    # insights (copilot/insights/): customer lifecycle
    customer_since: Mapped[date | None] = mapped_column(Date)
    renewal_date: Mapped[date | None] = mapped_column(Date)  # the next renewal
    churned_at: Mapped[date | None] = mapped_column(Date)  # set when the customer left
    arr: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))  # annual recurring revenue: the account's value
    owner: Mapped[str | None] = mapped_column(String(120))  # the account owner (NPS follow-ups are drafted for them)


class Contact(CrmRecord, Base):
    __tablename__ = "contacts"
    __table_args__ = _crm_table_args("contacts")

    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(50))
    title: Mapped[str | None] = mapped_column(String(120))
    language: Mapped[str | None] = mapped_column(String(16))
    # insights: a contact who came in as a lead (status open, qualified, converted or disqualified)
    lead_source: Mapped[str | None] = mapped_column(String(50))
    lead_status: Mapped[str | None] = mapped_column(String(32))
    lead_created_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    account: Mapped[Account | None] = relationship()


class Deal(CrmRecord, Base):
    __tablename__ = "deals"
    __table_args__ = _crm_table_args("deals")

    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[DealStage] = mapped_column(_enum(DealStage))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    close_date: Mapped[date | None] = mapped_column(Date)
    owner: Mapped[str | None] = mapped_column(String(120))
    next_step: Mapped[str | None] = mapped_column(Text)
    # [{"stage": "proposal", "at": "2026-03-01T10:00:00+00:00"}, ...] oldest first
    stage_history: Mapped[list[Any]] = mapped_column(default=list)
    # insights: where the deal came from, what kind it is (new_business, renewal, expansion), the owner's team
    lead_source: Mapped[str | None] = mapped_column(String(50))
    deal_type: Mapped[str | None] = mapped_column(String(32))
    team: Mapped[str | None] = mapped_column(String(80))

    account: Mapped[Account | None] = relationship()


class Ticket(CrmRecord, Base):
    __tablename__ = "tickets"
    __table_args__ = _crm_table_args("tickets")

    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.open)
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.normal)
    channel: Mapped[Channel] = mapped_column(_enum(Channel), default=Channel.email)
    assignee: Mapped[str | None] = mapped_column(String(120))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # insights: the assignee's team, the customer's satisfaction answer (1-5), times it was reopened after solving
    team: Mapped[str | None] = mapped_column(String(80))
    csat_score: Mapped[int | None] = mapped_column(Integer)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    account: Mapped[Account | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.sent_at", cascade="all, delete-orphan", passive_deletes=True
    )


class Message(CrmRecord, Base):
    __tablename__ = "messages"
    __table_args__ = (*_crm_table_args("messages"), Index("ix_messages_ticket_sent", "ticket_id", "sent_at"))

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_kind: Mapped[AuthorKind] = mapped_column(_enum(AuthorKind))
    author: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")


class Call(CrmRecord, Base):
    __tablename__ = "calls"
    __table_args__ = _crm_table_args("calls")

    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # [{"name": "Dana Reyes", "role": "rep"|"customer", "company": "..."}]
    participants: Mapped[list[Any]] = mapped_column(default=list)

    deal: Mapped[Deal | None] = relationship()
    account: Mapped[Account | None] = relationship()
    turns: Mapped[list[CallTurn]] = relationship(
        back_populates="call", order_by="CallTurn.position", cascade="all, delete-orphan", passive_deletes=True
    )


class CallTurn(WorkspaceScoped, Base):
    """One speaker turn of a call transcript; tasks cite turns by id."""

    __tablename__ = "call_turns"
    __table_args__ = (UniqueConstraint("call_id", "position", name="uq_call_turns_position"),)

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(200))
    start_s: Mapped[float] = mapped_column(default=0.0)
    text: Mapped[str] = mapped_column(Text)

    call: Mapped[Call] = relationship(back_populates="turns")


class NpsResponse(CrmRecord, Base):
    __tablename__ = "nps_responses"
    __table_args__ = (*_crm_table_args("nps_responses"), Index("ix_nps_ws_submitted", "workspace_id", "submitted_at"))

    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    survey: Mapped[str | None] = mapped_column(String(120))
    campaign: Mapped[str | None] = mapped_column(String(120))
    segment: Mapped[str | None] = mapped_column(String(50))

    contact: Mapped[Contact | None] = relationship()
    account: Mapped[Account | None] = relationship()


class KbArticle(CrmRecord, Base):
    __tablename__ = "kb_articles"
    __table_args__ = _crm_table_args("kb_articles")

    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)  # markdown, sections under "## " headings
    tags: Mapped[list[Any]] = mapped_column(default=list)


class Note(CrmRecord, Base):
    __tablename__ = "notes"
    __table_args__ = _crm_table_args("notes")

    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"), index=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), index=True)
    author: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    noted_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)

    account: Mapped[Account | None] = relationship()
    contact: Mapped[Contact | None] = relationship()
    deal: Mapped[Deal | None] = relationship()


class AiResult(WorkspaceScoped, Base):
    """One AI output with its provenance; drafts move through human review."""

    __tablename__ = "ai_results"
    __table_args__ = (
        Index("ix_ai_results_subject", "workspace_id", "subject_kind", "subject_id"),
        Index("ix_ai_results_status", "workspace_id", "status"),
        Index("ix_ai_results_created", "workspace_id", "created_at"),
    )

    task: Mapped[str] = mapped_column(String(64))
    status: Mapped[AiStatus] = mapped_column(_enum(AiStatus), default=AiStatus.pending)
    subject_kind: Mapped[str] = mapped_column(String(32))  # e.g. "ticket", "deal", "call"
    subject_id: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the task's typed result, as JSON
    final_text: Mapped[str | None] = mapped_column(Text)  # what the human approved (after edits)
    prompt_name: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    model_file: Mapped[str | None] = mapped_column(String(300))  # local models: GGUF file name and sha256
    input_ids: Mapped[list[Any]] = mapped_column(default=list)
    source_ids: Mapped[list[Any]] = mapped_column(default=list)
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    cost_usd: Mapped[float | None] = mapped_column()
    guard_verdicts: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)  # bumped on every review change

    __mapper_args__ = {"version_id_col": version}


class AuditEvent(Base):
    """Append-only log of every human decision and delivery."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_ws_at", "workspace_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id"), index=True)
    subject_kind: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    task: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    edit_distance: Mapped[int | None] = mapped_column(Integer)


class Role(str, enum.Enum):
    agent = "agent"
    rep = "rep"
    marketing = "marketing"
    lead = "lead"  # a support team lead: an agent who also sees the reply-QA scorecards
    admin = "admin"


class ApiKey(WorkspaceScoped, Base):
    """An API key bound to one workspace and role; only its hash is stored."""

    __tablename__ = "api_keys"

    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(_enum(Role))
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # shown in listings, used for lookup
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class WebSession(Base):
    """A browser session: the cookie carries only a random id whose sha256 is stored here, never key material."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)  # CSRF token, flash message
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class JobStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Job(WorkspaceScoped, Base):
    """Long-running work (NPS themes, reindexing, bulk summaries) with progress and a persisted result."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "status", "id"),
        Index("ix_jobs_dedupe", "workspace_id", "dedupe_key"),
        # one queued job per dedupe key, even when two API replicas submit it at the same moment
        Index(
            "uq_jobs_queued_dedupe",
            "workspace_id",
            "dedupe_key",
            unique=True,
            sqlite_where=text("status = 'queued' AND dedupe_key IS NOT NULL"),
            postgresql_where=text("status = 'queued' AND dedupe_key IS NOT NULL"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.queued)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None] = mapped_column()
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # A claim is a lease: the runner that holds it heartbeats; an expired lease means its runner died.
    lease_owner: Mapped[str | None] = mapped_column(String(120))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(default=0)  # claims so far (resumptions after a dead runner count)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    dedupe_key: Mapped[str | None] = mapped_column(String(200))  # one queued job per key (e.g. precompute per ticket)
    finished_by: Mapped[str | None] = mapped_column(String(120))  # the runner (host:pid:id) that recorded its end


class JobItem(Base):
    """One item of a bulk job done: written in the item's own transaction, so a resumed job skips exactly these."""

    __tablename__ = "job_items"
    __table_args__ = (UniqueConstraint("job_id", "item", name="uq_job_items_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    item: Mapped[int] = mapped_column()  # the position in the job's ``items``
    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id", ondelete="SET NULL"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class DeliveryStatus(str, enum.Enum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class Delivery(WorkspaceScoped, Base):
    """One outbound delivery of an approved output (webhook or export), idempotent by key."""

    __tablename__ = "deliveries"

    ai_result_id: Mapped[int] = mapped_column(ForeignKey("ai_results.id"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    target: Mapped[str] = mapped_column(String(500))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class SearchChunk(Base):
    """One indexed piece of customer history: the lexical index and the source of truth for the vector index."""

    __tablename__ = "search_chunks"
    __table_args__ = (
        Index("ix_search_chunks_record", "workspace_id", "record_kind", "record_id"),
        Index("ix_search_chunks_account", "workspace_id", "account_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # also the rowid of the SQLite FTS5 index
    chunk_id: Mapped[str] = mapped_column(String(96), unique=True)  # "<kind>:<record id>:<n>", the vector id too
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    record_kind: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(default=False)  # visible to every account of the workspace (KB)
    ts: Mapped[float] = mapped_column(default=0.0)  # unix seconds of the record
    text: Mapped[str] = mapped_column(Text)


CRM_MODELS: dict[str, type[CrmRecord]] = {
    "account": Account,
    "contact": Contact,
    "deal": Deal,
    "ticket": Ticket,
    "message": Message,
    "call": Call,
    "nps_response": NpsResponse,
    "kb_article": KbArticle,
    "note": Note,
}


# --- NPS themes (copilot/tasks/nps_themes/) -------------------------------------------------

from sqlalchemy import LargeBinary  # noqa: E402 - appended section


class NpsThemeRun(WorkspaceScoped, Base):
    """A saved NPS theme model: what new responses are assigned with, without refitting.

    Its report is the AiResult (task ``nps_themes``, subject ``nps_run`` = this id).
    """

    __tablename__ = "nps_theme_runs"

    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id", ondelete="SET NULL"), index=True)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ThemeFilters as JSON
    seed: Mapped[int] = mapped_column(default=0)
    k: Mapped[int] = mapped_column(Integer)
    embedding_model: Mapped[str] = mapped_column(String(200))
    dimensions: Mapped[int] = mapped_column(Integer)
    centroids: Mapped[bytes] = mapped_column(LargeBinary)  # float32 (fine clusters x dimensions), row-major
    theme_of: Mapped[list[Any]] = mapped_column(default=list)  # fine cluster -> theme id
    assigned: Mapped[int] = mapped_column(default=0)  # responses assigned so far


class NpsThemeAssignment(Base):
    """One response's membership in one theme of a run (theme -1: a comment with no usable sentence)."""

    __tablename__ = "nps_theme_assignments"
    __table_args__ = (
        UniqueConstraint("run_id", "response_id", "theme", name="uq_nps_theme_assignments"),
        Index("ix_nps_theme_assignments_theme", "run_id", "theme"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("nps_theme_runs.id", ondelete="CASCADE"))
    response_id: Mapped[int] = mapped_column(ForeignKey("nps_responses.id", ondelete="CASCADE"), index=True)
    theme: Mapped[int] = mapped_column(Integer)
    sentences: Mapped[int] = mapped_column(default=0)  # sentences of the response in this theme
    sentiment: Mapped[float] = mapped_column(default=0.0)  # their mean sentiment score (-1..1)


class SentimentHead(WorkspaceScoped, Base):
    """A workspace's own sentiment head, trained on its labelled messages;
    replaces the shipped one for that workspace."""

    __tablename__ = "sentiment_heads"
    __table_args__ = (UniqueConstraint("workspace_id", name="uq_sentiment_heads_workspace"),)

    weights: Mapped[bytes] = mapped_column(LargeBinary)  # npz: coef (3 x features), intercept (3)
    embedding_sha256: Mapped[str] = mapped_column(String(64))  # the encoder the features came from
    examples: Mapped[int] = mapped_column(Integer)
    label_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict)  # cross-validated figures on the training file
    source: Mapped[str] = mapped_column(String(500))  # file name and sha256 of the labelled data
    trained_by: Mapped[str] = mapped_column(String(200))


# --- Triage and the knowledge loop (copilot/tasks/triage*.py, copilot/tasks/kb_draft.py, copilot/events.py) --------


class TriageLabel(WorkspaceScoped, Base):
    """One topic of the workspace's own label set: the only labels triage may give a ticket."""

    __tablename__ = "triage_labels"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_triage_labels_name"),)

    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    queue: Mapped[str] = mapped_column(String(80))  # the team / queue tickets of this topic go to
    position: Mapped[int] = mapped_column(default=0)


class TicketRouting(WorkspaceScoped, Base):
    """A ticket's topic and queue as the team set them (by hand, or by applying a triage suggestion)."""

    __tablename__ = "ticket_routings"
    __table_args__ = (
        UniqueConstraint("ticket_id", name="uq_ticket_routings_ticket"),
        Index("ix_ticket_routings_topic", "workspace_id", "topic"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    topic: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(80))
    source: Mapped[str] = mapped_column(String(32))  # agent | triage | auto_triage | import
    set_by: Mapped[str] = mapped_column(String(200))
    ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id", ondelete="SET NULL"), index=True)

    ticket: Mapped[Ticket] = relationship()


class TriageHead(WorkspaceScoped, Base):
    """A workspace's own topic classifier, trained on its labelled tickets; replaces the shipped one for it."""

    __tablename__ = "triage_heads"
    __table_args__ = (UniqueConstraint("workspace_id", name="uq_triage_heads_workspace"),)

    weights: Mapped[bytes] = mapped_column(LargeBinary)  # npz: coef (labels x dimensions), intercept (labels)
    labels: Mapped[list[Any]] = mapped_column(default=list)  # row order of coef
    embedding_model: Mapped[str] = mapped_column(String(200))  # the encoder the features came from
    examples: Mapped[int] = mapped_column(Integer)
    label_counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(default=dict)  # cross-validated figures on the training data
    source: Mapped[str] = mapped_column(String(500))
    trained_by: Mapped[str] = mapped_column(String(200))


class OutboundEvent(WorkspaceScoped, Base):
    """A record-change event for the workspace's webhook (signed like reply deliveries), idempotent by key."""

    __tablename__ = "outbound_events"
    __table_args__ = (Index("ix_outbound_events_subject", "workspace_id", "subject_kind", "subject_id"),)

    event: Mapped[str] = mapped_column(String(64))  # e.g. ticket.updated
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    target: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus), default=DeliveryStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# --- Reply library (copilot/tasks/reply_library.py) --------------------------------------------------------


class ReplyTemplate(WorkspaceScoped, Base):
    """An approved reply, scrubbed of personal data and case facts: a source for every customer of the workspace."""

    __tablename__ = "reply_library"
    __table_args__ = (UniqueConstraint("workspace_id", "source_ai_result_id", name="uq_reply_library_source"),)

    question: Mapped[str] = mapped_column(Text)  # the customer's ask it answered, scrubbed
    answer: Mapped[str] = mapped_column(Text)  # the approved reply, scrubbed (slots like {amount} in place of facts)
    language: Mapped[str] = mapped_column(String(16), default="en")
    source_ai_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id", ondelete="SET NULL"))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    uses: Mapped[int] = mapped_column(default=0)


# --- NPS advocacy and recovery (copilot/tasks/nps_advocacy.py) ----------------------------------------------------


class NpsAdvocacy(WorkspaceScoped, Base):
    """A promoter's thank-you or a detractor's follow-up: who sends it, and whether an approved draft asked them."""

    __tablename__ = "nps_advocacy"
    __table_args__ = (
        UniqueConstraint("response_id", name="uq_nps_advocacy_response"),
        Index("ix_nps_advocacy_owner", "workspace_id", "owner"),
    )

    response_id: Mapped[int] = mapped_column(ForeignKey("nps_responses.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # thank_you (promoter) | follow_up (detractor)
    owner: Mapped[str | None] = mapped_column(String(120))  # who sends it: the account owner, or support
    route: Mapped[str] = mapped_column(String(16))  # account_owner | support | team
    asked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())  # set when a draft is approved
    asked_result_id: Mapped[int | None] = mapped_column(ForeignKey("ai_results.id", ondelete="SET NULL"))
