"""Validated input rows, one pydantic model per record kind.

Rows refer to other records by external id (``account``, ``contact``, ``deal``, ``ticket``);
ingest resolves them to row ids. Unknown columns are errors so a typo never passes silently.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from copilot.store.models import AuthorKind, Channel, DealStage, Priority, TicketStatus, utc

UtcDatetime = Annotated[datetime, AfterValidator(utc)]
ExternalId = Annotated[str, Field(min_length=1, max_length=128)]
Text = Annotated[str, Field(min_length=1)]


class Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: ExternalId | None = None


def _json_list(value: Any) -> Any:
    """CSV cells hold lists as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error.msg}") from None
    return value


class AccountRow(Row):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    domain: str | None = None
    industry: str | None = None
    segment: str | None = None
    country: str | None = None
    plan: str | None = None
    customer_since: date | None = None
    renewal_date: date | None = None
    churned_at: date | None = None
    arr: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    owner: Annotated[str, Field(max_length=120)] | None = None


class ContactRow(Row):
    account: ExternalId | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: str | None = None
    phone: str | None = None
    title: str | None = None
    language: Annotated[str, Field(max_length=16)] | None = None
    lead_source: Annotated[str, Field(max_length=50)] | None = None
    lead_status: Literal["open", "qualified", "converted", "disqualified"] | None = None
    lead_created_at: UtcDatetime | None = None


class StageChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stage: DealStage
    at: UtcDatetime


class DealRow(Row):
    account: ExternalId | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)]
    stage: DealStage
    amount: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)] | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    close_date: date | None = None
    owner: str | None = None
    next_step: str | None = None
    stage_history: list[StageChange] = Field(default_factory=list)
    lead_source: Annotated[str, Field(max_length=50)] | None = None
    deal_type: Literal["new_business", "renewal", "expansion"] | None = None
    team: Annotated[str, Field(max_length=80)] | None = None

    _parse_history = field_validator("stage_history", mode="before")(_json_list)


class TicketRow(Row):
    account: ExternalId | None = None
    contact: ExternalId | None = None
    subject: Annotated[str, Field(min_length=1, max_length=300)]
    status: TicketStatus = TicketStatus.open
    priority: Priority = Priority.normal
    channel: Channel = Channel.email
    assignee: str | None = None
    opened_at: UtcDatetime | None = None
    closed_at: UtcDatetime | None = None
    team: Annotated[str, Field(max_length=80)] | None = None
    csat_score: Annotated[int, Field(ge=1, le=5)] | None = None
    reopen_count: Annotated[int, Field(ge=0)] = 0


class MessageRow(Row):
    ticket: ExternalId
    author_kind: AuthorKind
    author: str | None = None
    body: Text
    sent_at: UtcDatetime


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1)]
    role: str | None = None
    company: str | None = None


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speaker: Annotated[str, Field(min_length=1, max_length=200)]
    start_s: Annotated[float, Field(ge=0)] = 0.0
    text: Text


class CallRow(Row):
    deal: ExternalId | None = None
    account: ExternalId | None = None
    title: Annotated[str, Field(min_length=1, max_length=300)]
    started_at: UtcDatetime
    participants: list[Participant] = Field(default_factory=list)
    turns: list[Turn] = Field(default_factory=list)

    _parse_lists = field_validator("participants", "turns", mode="before")(_json_list)


class NpsResponseRow(Row):
    contact: ExternalId | None = None
    account: ExternalId | None = None
    score: Annotated[int, Field(ge=0, le=10)]
    comment: str | None = None
    submitted_at: UtcDatetime
    survey: str | None = None
    campaign: str | None = None
    segment: str | None = None


class KbArticleRow(Row):
    title: Annotated[str, Field(min_length=1, max_length=300)]
    body: Text
    tags: list[str] = Field(default_factory=list)

    _parse_tags = field_validator("tags", mode="before")(_json_list)


class NoteRow(Row):
    account: ExternalId | None = None
    contact: ExternalId | None = None
    deal: ExternalId | None = None
    ticket: ExternalId | None = None
    author: str | None = None
    body: Text
    noted_at: UtcDatetime | None = None


ROW_SCHEMAS: dict[str, type[Row]] = {
    "account": AccountRow,
    "contact": ContactRow,
    "deal": DealRow,
    "ticket": TicketRow,
    "message": MessageRow,
    "call": CallRow,
    "nps_response": NpsResponseRow,
    "kb_article": KbArticleRow,
    "note": NoteRow,
}

# Fields that name another record by external id, and the kind they point to.
REFERENCE_FIELDS: dict[str, str] = {"account": "account", "contact": "contact", "deal": "deal", "ticket": "ticket"}

# Kinds in an order where every reference points to an earlier kind.
KIND_ORDER: tuple[str, ...] = tuple(ROW_SCHEMAS)
