"""Triage and the knowledge loop: triage a ticket, apply or dismiss its suggestion, change a ticket's routing,
the workspace's label set, triage settings and topic head (admins), routing quality stats, record-change events,
KB drafts from recurring questions, and the knowledge-gap report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, PageParams, allow
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.routers.support import ticket_id_of, ticket_or_404
from api.schemas import AiResultOut, IdPath, RecordRef
from copilot.auth import Permission
from copilot.events import list_events
from copilot.store.models import DeliveryStatus
from copilot.tasks.base import TaskOutcome
from copilot.tasks.knowledge_gaps import GapReport, knowledge_gaps
from copilot.tasks.triage import TicketTriage, latest_triage
from copilot.tasks.triage_apply import (
    AppliedChange,
    AppliedTriage,
    ApplyRequest,
    LabelStats,
    TicketChange,
    apply_triage,
    change_ticket,
    current_values,
    dismiss_triage,
    triage_stats,
)
from copilot.tasks.triage_labels import (
    LabelSpec,
    TriageSettings,
    add_label,
    remove_label,
    reset_labels,
    set_labels,
    set_triage_settings,
    triage_settings,
    workspace_labels,
)
from copilot.tasks.triage_model import SHIPPED_HEAD
from copilot.tasks.triage_train import (
    LabelledTicket,
    TopicHeadInfo,
    check_examples,
    reset_workspace_head,
    workspace_head,
)

router = APIRouter(prefix="/v1", tags=["triage and knowledge"], responses=ERROR_RESPONSES)
Reader = Annotated[Caller, Depends(allow(Permission.read_tickets))]
Runner = Annotated[Caller, Depends(allow(Permission.run_support))]
Reviewer = Annotated[Caller, Depends(allow(Permission.review_support))]
Admin = Annotated[Caller, Depends(allow(Permission.manage))]


class TicketTriageOut(BaseModel):
    ticket_id: int
    current: dict[str, str | None] = Field(description="The ticket's topic, queue, assignee and priority now.")
    triage: AiResultOut | None = Field(description="The latest triage result (its content.result is the triage).")


class DismissRequest(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)
    version: int | None = None


class LabelSetRequest(BaseModel):
    labels: list[LabelSpec] = Field(min_length=1, max_length=500)


class SettingsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_arrival: bool | None = None
    auto_apply: bool | None = None
    unsure_below: float | None = Field(default=None, ge=0.0, le=1.0)


class HeadRequest(BaseModel):
    examples: list[LabelledTicket] | None = Field(default=None, max_length=50_000, description="(text, label) rows.")
    from_tickets: bool = Field(default=False, description="Train on the tickets whose topic the team set.")
    source: str = Field(default="API upload", max_length=200)
    dry_run: bool = Field(default=False, description="Cross-validate and report in the job result; save nothing.")
    force: bool = Field(default=False, description="Save even when the new head scores below the one in use.")


class HeadOut(BaseModel):
    head: str
    workspace_head: TopicHeadInfo | None


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event: str
    subject_kind: str
    subject_id: int | None
    payload: dict[str, Any]
    target: str | None
    status: DeliveryStatus
    attempts: int
    last_error: str | None


class KbDraftsRequest(BaseModel):
    days: int = Field(default=365, ge=1, le=3650, description="Resolved tickets opened in the last N days.")
    limit: int = Field(default=5, ge=1, le=50, description="At most this many drafts (biggest clusters first).")
    min_tickets: int = Field(default=3, ge=2, le=100)
    include_covered: bool = Field(default=False, description="Also questions an existing KB article answers.")


# -- triage ---------------------------------------------------------------------------------------------------


@router.post("/tickets/{ticket_id}/triage", response_model=TaskOutcome[TicketTriage])
def triage(ticket_id: RecordRef, caller: Runner) -> TaskOutcome[TicketTriage]:
    """Triage the ticket now (a suggestion: nothing on the ticket changes until it is applied)."""
    return caller.run_task("ticket_triage", {"ticket_id": ticket_id_of(caller, ticket_id)})


@router.get("/tickets/{ticket_id}/triage", response_model=TicketTriageOut)
def ticket_triage(ticket_id: RecordRef, caller: Reader) -> TicketTriageOut:
    with caller.repo() as repo:
        ticket = ticket_or_404(repo, ticket_id)
        row = latest_triage(repo, ticket.id)
        return TicketTriageOut(
            ticket_id=ticket.id,
            current=current_values(repo, ticket),
            triage=AiResultOut.model_validate(row) if row else None,
        )


@router.post("/triage/{result_id}/apply", response_model=AppliedTriage)
def apply(result_id: IdPath, caller: Runner, request: ApplyRequest | None = None) -> AppliedTriage:
    """Apply a triage suggestion to its ticket, with any field changed first (audited; a ticket.updated event)."""
    caller.principal.require(Permission.review_support)
    with caller.repo() as repo:
        applied = apply_triage(repo, result_id, request or ApplyRequest(), actor=caller.principal.actor)
    caller.services.jobs.start()
    return applied


@router.post("/triage/{result_id}/dismiss", response_model=AiResultOut)
def dismiss(result_id: IdPath, caller: Reviewer, request: DismissRequest | None = None) -> AiResultOut:
    request = request or DismissRequest()
    with caller.repo() as repo:
        row = dismiss_triage(
            repo, result_id, actor=caller.principal.actor, reason=request.reason, version=request.version
        )
        return AiResultOut.model_validate(row)


@router.patch("/tickets/{ticket_id}/routing", response_model=AppliedChange)
def change_routing(ticket_id: RecordRef, request: TicketChange, caller: Runner) -> AppliedChange:
    """Set a ticket's topic, queue, assignee or priority by hand (audited; the same ticket.updated event)."""
    with caller.repo() as repo:
        ticket = ticket_or_404(repo, ticket_id)
        changed = change_ticket(repo, ticket, request, actor=caller.principal.actor, source="agent")
    caller.services.jobs.start()
    return changed


@router.get("/triage/labels", response_model=list[LabelSpec])
def labels(caller: Reader) -> list[LabelSpec]:
    with caller.repo() as repo:
        return workspace_labels(repo)


@router.get("/review/stats/triage", response_model=list[LabelStats])
def stats(caller: Reviewer) -> list[LabelStats]:
    """Per suggested topic: how often triage suggestions were accepted, changed (which fields) or dismissed."""
    with caller.repo() as repo:
        return triage_stats(repo)


# -- administration -------------------------------------------------------------------------------------------


@router.put("/admin/triage/labels", response_model=list[LabelSpec])
def put_labels(request: LabelSetRequest, caller: Admin) -> list[LabelSpec]:
    """Replace the workspace's label set (the only topics triage may give)."""
    with caller.repo() as repo:
        return set_labels(repo, request.labels, caller.principal.actor)


@router.post("/admin/triage/labels", response_model=list[LabelSpec])
def post_label(request: LabelSpec, caller: Admin) -> list[LabelSpec]:
    """Add a label, or change an existing label's queue and description."""
    with caller.repo() as repo:
        return add_label(repo, request, caller.principal.actor)


@router.delete("/admin/triage/labels/{name}", response_model=list[LabelSpec])
def delete_label(name: str, caller: Admin) -> list[LabelSpec]:
    with caller.repo() as repo:
        return remove_label(repo, name, caller.principal.actor)


@router.delete("/admin/triage/labels", response_model=list[LabelSpec])
def reset(caller: Admin) -> list[LabelSpec]:
    """Back to the shipped label set."""
    with caller.repo() as repo:
        return reset_labels(repo, caller.principal.actor)


@router.get("/admin/triage/settings", response_model=TriageSettings)
def get_settings(caller: Admin) -> TriageSettings:
    with caller.repo() as repo:
        return triage_settings(repo)


@router.put("/admin/triage/settings", response_model=TriageSettings)
def put_settings(request: SettingsRequest, caller: Admin) -> TriageSettings:
    """Triage on arrival, auto-apply (off by default) and the confidence threshold below which a topic is unsure."""
    with caller.repo() as repo:
        return set_triage_settings(repo, request.model_dump(exclude_none=True), caller.principal.actor)


@router.get("/admin/triage/head", response_model=HeadOut)
def head(caller: Admin) -> HeadOut:
    with caller.repo() as repo:
        info = workspace_head(repo)
    return HeadOut(head=info.name if info else SHIPPED_HEAD, workspace_head=info)


@router.post("/admin/triage/head", response_model=JobOut, status_code=202)
def train_head(request: HeadRequest, caller: Admin, response: Response) -> JobOut:
    """Train the workspace's own topic head as a job (cross-validated first; see the job result)."""
    if request.examples is None and not request.from_tickets:
        from copilot.errors import InvalidInput

        raise InvalidInput("examples: give labelled examples, or from_tickets: true")
    if request.examples is not None:
        with caller.repo() as repo:
            check_examples(repo, request.examples, "examples")
    params = {
        "examples": [e.model_dump() for e in request.examples or []],
        "from_tickets": request.from_tickets,
        "source": "labelled tickets" if request.from_tickets else request.source,
        "actor": caller.principal.actor,
        "dry_run": request.dry_run,
        "force": request.force,
    }
    return submit_job(caller, response, "triage_head", params)


@router.delete("/admin/triage/head", status_code=204)
def reset_head(caller: Admin) -> Response:
    with caller.repo() as repo:
        reset_workspace_head(repo, caller.principal.actor)
    return Response(status_code=204)


@router.get("/events", response_model=list[EventOut])
def events(caller: Admin, page: PageParams, ticket_id: Annotated[int | None, Query(ge=1)] = None) -> list[EventOut]:
    """Record-change events (ticket.updated), newest first: the feed for teams without a webhook."""
    with caller.repo() as repo:
        rows = list_events(
            repo,
            subject_kind="ticket" if ticket_id else None,
            subject_id=ticket_id,
            offset=page.offset,
            limit=page.limit,
        )
        return [EventOut.model_validate(r) for r in rows]


# -- the knowledge loop ---------------------------------------------------------------------------------------


@router.post("/knowledge/drafts", response_model=JobOut, status_code=202)
def kb_drafts(caller: Runner, response: Response, request: KbDraftsRequest | None = None) -> JobOut:
    """Draft KB articles for the top recurring questions of resolved tickets, as a job; drafts go to review."""
    return submit_job(caller, response, "kb_drafts", (request or KbDraftsRequest()).model_dump())


@router.get("/knowledge/gaps", response_model=GapReport)
def gaps(
    caller: Reader,
    days: Annotated[int, Query(ge=1, le=3650)] = 90,
    min_tickets: Annotated[int, Query(ge=1, le=1000)] = 3,
) -> GapReport:
    """Topics with many recent tickets that no KB passage answers, or whose drafts reviewers reject or rewrite."""
    with caller.repo() as repo:
        return knowledge_gaps(caller.services.embedder, repo, days=days, min_tickets=min_tickets)
