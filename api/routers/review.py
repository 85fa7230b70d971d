"""Human review: the queue, decisions (optimistic concurrency), delivery, the audit log and review stats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, PageParams, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import MAX_ID, AiResultOut, IdField, IdPath, IdQuery, PageOf
from copilot.auth import Permission
from copilot.delivery import delivered_tasks, prepare_delivery
from copilot.errors import CopilotError, PermissionDenied
from copilot.review import (
    UNASSIGNED,
    Decision,
    QueueContext,
    QueueCounts,
    QueueFilters,
    QueueOrder,
    ReviewRequest,
    TaskStats,
    audit_events,
    blocking_guards,
    commitments,
    decide,
    draft_text,
    get_reviewable,
    low_risk,
    queue,
    queue_context,
    queue_counts,
    review_stats,
    without_citations,
)
from copilot.store.models import AiStatus, DeliveryStatus, Priority

router = APIRouter(prefix="/v1", tags=["review"], responses=ERROR_RESPONSES)


def reviewer(caller: Annotated[Caller, Depends(any_caller)]) -> Caller:
    if not caller.principal.reviewable_tasks():
        raise PermissionDenied(f"role '{caller.principal.role.value}' may not review AI results")
    return caller


Reviewer = Annotated[Caller, Depends(reviewer)]


class BatchItem(BaseModel):
    id: IdField
    version: int


class BatchApproveRequest(BaseModel):
    items: list[BatchItem] = Field(min_length=1, max_length=200)


class BatchOutcome(BaseModel):
    id: int
    approved: bool
    error: str | None = None


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ai_result_id: int
    idempotency_key: str
    target: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    ai_result_id: int | None
    subject_kind: str | None
    subject_id: int | None
    task: str | None
    before: dict | None
    after: dict | None
    edit_distance: int | None


class QueueItemOut(AiResultOut):
    context: QueueContext = Field(description="Whose it is and how urgent: ticket, customer, account, tone, SLA.")


QueueTask = Annotated[str | None, Query(max_length=64, description="Only this task's results.")]
QueuePriority = Annotated[list[Priority] | None, Query(description="Only items on tickets of these priorities.")]
QueueAssignee = Annotated[
    str | None, Query(max_length=120, description=f"Ticket assignee or deal owner; `{UNASSIGNED}` for nobody.")
]
QueueAccount = Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only items about this account.")]


def queue_tasks(caller: Caller, task: str | None) -> list[str]:
    return [t for t in caller.principal.reviewable_tasks() if task in (None, t)]


@router.get(
    "/review/queue",
    response_model=PageOf[QueueItemOut],
    description="Results waiting for review, in work order by default: ticket priority, then SLA breach risk "
    "(the customer waiting longest within a priority), then age; filter by task, priority, assignee and account.",
)
def review_queue(
    caller: Reviewer,
    page: PageParams,
    status: AiStatus = AiStatus.pending,
    task: QueueTask = None,
    priority: QueuePriority = None,
    assignee: QueueAssignee = None,
    account_id: QueueAccount = None,
    order: QueueOrder = QueueOrder.work,
    subject_kind: Annotated[str | None, Query(max_length=32)] = None,
    subject_id: IdQuery = None,
):
    with caller.repo() as repo:
        rows, total = queue(
            repo,
            queue_tasks(caller, task),
            status=status,
            subject_kind=subject_kind,
            subject_id=subject_id,
            priorities=priority,
            assignee=assignee,
            account_id=account_id,
            order=order,
            offset=page.offset,
            limit=page.limit,
        )
        contexts = queue_context(repo, rows)
        items = [QueueItemOut(**AiResultOut.model_validate(r).model_dump(), context=contexts[r.id]) for r in rows]
        return PageOf[QueueItemOut](items=items, total=total, offset=page.offset, limit=page.limit)


@router.get("/review/queue/counts", response_model=QueueCounts)
def review_queue_counts(
    caller: Reviewer,
    status: AiStatus = AiStatus.pending,
    task: QueueTask = None,
    priority: QueuePriority = None,
    assignee: QueueAssignee = None,
    account_id: QueueAccount = None,
) -> QueueCounts:
    """How many items each task, priority, assignee and account would show, with the other filters applied."""
    filters = QueueFilters(
        tasks=None if task is None else [task], priorities=priority or [], assignee=assignee, account_id=account_id
    )
    with caller.repo() as repo:
        return queue_counts(repo, caller.principal.reviewable_tasks(), filters, status=status)


@router.get("/review/stats", response_model=list[TaskStats])
def stats(caller: Reviewer) -> list[TaskStats]:
    """Acceptance rate, edit rate and mean edit distance per task, prompt version and model."""
    with caller.repo() as repo:
        return [s for s in review_stats(repo) if s.task in caller.principal.reviewable_tasks()]


@router.get(
    "/review/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
    description="Approved and edited results as JSON lines, "
    "for teams that send replies from their own tool instead of a webhook.",
)
def export_approved(caller: Reviewer, task: str = "reply_draft"):
    delivered = delivered_tasks()
    with caller.repo() as repo:
        tasks = [t for t in caller.principal.reviewable_tasks() if t == task]
        rows, _ = queue(repo, tasks, status=AiStatus.approved, order=QueueOrder.oldest, limit=10_000)
        edited, _ = queue(repo, tasks, status=AiStatus.edited, order=QueueOrder.oldest, limit=10_000)
        lines = [
            json.dumps(
                {
                    "ai_result_id": r.id,
                    "task": r.task,
                    "subject_kind": r.subject_kind,
                    "subject_id": r.subject_id,
                    "status": r.status.value,
                    "text": without_citations(draft_text(r)) if r.task in delivered else draft_text(r),
                },
                ensure_ascii=False,
            )
            + "\n"
            for r in [*rows, *edited]
        ]
    return StreamingResponse(iter(lines), media_type="application/x-ndjson")


@router.get("/review/{result_id}", response_model=AiResultOut)
def get_result(result_id: IdPath, caller: Reviewer) -> AiResultOut:
    with caller.repo() as repo:
        return AiResultOut.model_validate(get_reviewable(repo, result_id, caller.principal.reviewable_tasks()))


@router.post(
    "/review/{result_id}/decision",
    response_model=AiResultOut,
    description="Approve, edit or reject, quoting the version you saw; a stale version gets 409. "
    "Approved replies go to the webhook.",
)
def decide_route(
    result_id: IdPath, request: ReviewRequest, caller: Reviewer, background: BackgroundTasks
) -> AiResultOut:
    with caller.repo() as repo:
        row = decide(repo, result_id, request, actor=caller.principal.actor, tasks=caller.principal.reviewable_tasks(),
                     may_override=caller.principal.can(Permission.manage))  # fmt: skip
        out = AiResultOut.model_validate(row)
        deliverable = request.decision is not Decision.reject and prepare_delivery(repo, row.id) is not None
    if deliverable:
        background.add_task(caller.services.deliver, caller.principal.workspace_slug, result_id)
    return out


@router.post(
    "/review/batch-approve",
    response_model=list[BatchOutcome],
    description="Approve several low-risk items; items with commitments or failed guards are refused "
    "(approve those one by one).",
)
def batch_approve(request: BatchApproveRequest, caller: Reviewer, background: BackgroundTasks) -> list[BatchOutcome]:
    outcomes = []
    for item in request.items:
        try:
            with caller.repo() as repo:
                row = get_reviewable(repo, item.id, caller.principal.reviewable_tasks())
                if not low_risk(row):
                    reasons = [f"commits to {', '.join(commitments(row))}"] if commitments(row) else []
                    reasons += [f"failed the {', '.join(blocking_guards(row))} guard"] if blocking_guards(row) else []
                    reasons += [] if reasons else ["the rewrite is identical to its input"]
                    raise PermissionDenied("needs a decision of its own: " + "; ".join(reasons))
                decide(
                    repo,
                    item.id,
                    ReviewRequest(decision=Decision.approve, version=item.version),
                    actor=caller.principal.actor,
                    tasks=caller.principal.reviewable_tasks(),
                )
                deliverable = prepare_delivery(repo, item.id) is not None
            if deliverable:
                background.add_task(caller.services.deliver, caller.principal.workspace_slug, item.id)
            outcomes.append(BatchOutcome(id=item.id, approved=True))
        except CopilotError as error:
            outcomes.append(BatchOutcome(id=item.id, approved=False, error=str(error)))
    return outcomes


@router.post("/review/{result_id}/deliver", response_model=DeliveryOut | None)
def redeliver(result_id: IdPath, caller: Reviewer) -> DeliveryOut | None:
    """Deliver (again) an approved reply to the workspace webhook; returns the delivery after its attempts."""
    with caller.repo() as repo:
        row = get_reviewable(repo, result_id, caller.principal.reviewable_tasks())
        if row.task not in delivered_tasks():
            raise PermissionDenied(f"{row.task} results are not delivered to customers")
        if prepare_delivery(repo, row.id) is None:
            return None
    delivery = caller.services.deliver(caller.principal.workspace_slug, result_id)
    return DeliveryOut.model_validate(delivery) if delivery else None


@router.get("/audit", response_model=PageOf[AuditEventOut])
def audit(
    caller: Reviewer,
    page: PageParams,
    ticket_id: IdQuery = None,
    actor: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
):
    """The append-only log of decisions and deliveries, per ticket, reviewer or task."""
    with caller.repo() as repo:
        rows, total = audit_events(
            repo,
            ticket_id=ticket_id,
            actor=actor,
            task=task,
            since=since,
            offset=page.offset,
            limit=page.limit,
            visible_tasks=caller.principal.reviewable_tasks(),
            include_untasked=caller.principal.can(Permission.manage),
        )
        items = [AuditEventOut.model_validate(r) for r in rows]
        return PageOf[AuditEventOut](items=items, total=total, offset=page.offset, limit=page.limit)
