"""Human review: the queue, decisions (optimistic concurrency), delivery, the audit log and review stats."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Caller, PageParams, any_caller
from api.errors import ERROR_RESPONSES
from api.schemas import AiResultOut, IdField, IdPath, IdQuery, PageOf
from copilot.auth import Permission
from copilot.delivery import delivered_tasks, prepare_delivery
from copilot.errors import CopilotError, PermissionDenied
from copilot.review import (
    Decision,
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
    review_stats,
    without_citations,
)
from copilot.store.models import AiStatus, DeliveryStatus

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


@router.get("/review/queue", response_model=PageOf[AiResultOut])
def review_queue(
    caller: Reviewer,
    page: PageParams,
    status: AiStatus = AiStatus.pending,
    task: str | None = None,
    subject_kind: str | None = None,
    subject_id: IdQuery = None,
):
    tasks = [t for t in caller.principal.reviewable_tasks() if task in (None, t)]
    with caller.repo() as repo:
        rows, total = queue(
            repo,
            tasks,
            status=status,
            subject_kind=subject_kind,
            subject_id=subject_id,
            offset=page.offset,
            limit=page.limit,
        )
        return PageOf[AiResultOut](
            items=[AiResultOut.model_validate(r) for r in rows], total=total, offset=page.offset, limit=page.limit
        )


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
        rows, _ = queue(
            repo, [t for t in caller.principal.reviewable_tasks() if t == task], status=AiStatus.approved, limit=10_000
        )
        edited, _ = queue(
            repo, [t for t in caller.principal.reviewable_tasks() if t == task], status=AiStatus.edited, limit=10_000
        )
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
