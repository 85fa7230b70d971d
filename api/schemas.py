"""Response models for records, generated once from the SQLAlchemy models so they never drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import inspect as sa_inspect

from copilot.errors import NotFound
from copilot.store import Repo
from copilot.store.models import CRM_MODELS, AiStatus, Message, Ticket

T = TypeVar("T")
MAX_ID = 2**63 - 1  # the largest id a database integer column holds
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
IdField = Annotated[int, Field(ge=1, le=MAX_ID)]
REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
RecordRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=REF_PATTERN,
        description="The record's id (`12`) or its external id (`T-1179`).",
        examples=["12", "T-1179"],
    ),
]

R = TypeVar("R")


def resolve_ref(repo: Repo, model: type[R], reference: str | int) -> R:
    """The record an id or external id names, NotFound otherwise (a number past the id range can only be an
    external id, so it never reaches the database as an integer)."""
    text = str(reference)
    if text.isascii() and text.isdigit() and int(text) > MAX_ID:
        row = repo.by_external_id(model, text)  # type: ignore[type-var]
        if row is None:
            raise NotFound(f"no {model.__tablename__.removesuffix('s').replace('_', ' ')} '{text}' in this workspace")
        return row
    if not text.isascii():
        raise NotFound(f"no record '{text[:40]}' in this workspace")
    return repo.resolve(model, text)  # type: ignore[type-var]


class PageOf(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


def _python_type(column: Any) -> Any:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return Any
    return {dict: dict[str, Any], list: list[Any]}.get(kind, kind)


def record_model(model: type) -> type[BaseModel]:
    fields = {
        column.key: (_python_type(column) | None, None)
        for column in sa_inspect(model).columns
        if column.key != "workspace_id"
    }
    return create_model(f"{model.__name__}Out", __config__=ConfigDict(from_attributes=True), **fields)


RECORD_MODELS: dict[str, type[BaseModel]] = {kind: record_model(model) for kind, model in CRM_MODELS.items()}
TicketOut = RECORD_MODELS["ticket"]
MessageOut = RECORD_MODELS["message"]


class ThreadOut(BaseModel):
    ticket: TicketOut  # type: ignore[valid-type]
    messages: list[MessageOut]  # type: ignore[valid-type]


class AiResultOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    task: str
    status: AiStatus
    subject_kind: str
    subject_id: int | None
    content: dict[str, Any]
    final_text: str | None
    prompt_name: str | None
    prompt_version: str | None
    model: str | None
    input_ids: list[Any]
    source_ids: list[Any]
    tokens_in: int
    tokens_out: int
    latency_ms: float
    cost_usd: float | None
    guard_verdicts: list[Any]
    error: str | None
    version: int
    created_at: datetime
    updated_at: datetime


def thread_out(ticket: Ticket, messages: list[Message]) -> ThreadOut:
    return ThreadOut(ticket=TicketOut.model_validate(ticket), messages=[MessageOut.model_validate(m) for m in messages])
