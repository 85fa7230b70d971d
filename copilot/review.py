"""Human review: the queue, decisions with optimistic concurrency, the audit trail and review stats.

An output moves ``pending -> approved | edited | rejected`` (``stale`` when the customer wrote
again, ``sent`` once delivered). Every decision carries the version the reviewer saw, so of two
reviewers deciding at once exactly one wins; the other gets a Conflict.
"""

from __future__ import annotations

import enum
import importlib
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, select
from sqlalchemy.orm.exc import StaleDataError

from copilot.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, AuditEvent

REVIEWED = (AiStatus.approved, AiStatus.edited, AiStatus.rejected, AiStatus.sent)


class Decision(str, enum.Enum):
    approve = "approve"
    edit = "edit"
    reject = "reject"


class ReviewRequest(BaseModel):
    decision: Decision
    version: int
    text: str | None = None  # the reviewer's final text, for ``edit``
    reason: str | None = None  # why, for ``reject``
    confirm_commitments: bool = False  # explicit approval of a draft that promises a refund, credit, deadline, ...


class TaskStats(BaseModel):
    task: str
    prompt_version: str | None
    model: str | None
    decided: int
    approved: int
    edited: int
    rejected: int
    acceptance_rate: float
    edit_rate: float
    mean_edit_distance: float | None


def draft_text(row: AiResult) -> str:
    """The text a reviewer approves: the final text after edits, else the draft's text or rendered result."""
    if row.final_text is not None:
        return row.final_text
    result = row.content.get("result", {})
    if isinstance(result.get("text"), str):
        return result["text"]
    return json.dumps(result, ensure_ascii=False, indent=2)


def commitments(row: AiResult) -> list[str]:
    return list(row.content.get("result", {}).get("needs_explicit_approval") or [])


def blocking_guards(row: AiResult) -> list[str]:
    return [
        v["name"] for v in row.guard_verdicts if not v.get("passed", True) and v.get("severity", "block") == "block"
    ]


def get_reviewable(repo: Repo, result_id: int, tasks: list[str]) -> AiResult:
    row = repo.get(AiResult, result_id)
    if row is None:
        raise NotFound(f"no AI result {result_id} in workspace '{repo.workspace.slug}'")
    if row.task not in tasks:
        raise PermissionDenied(f"your role may not review {row.task} results")
    return row


def decide(repo: Repo, result_id: int, request: ReviewRequest, *, actor: str, tasks: list[str]) -> AiResult:
    """Apply one reviewer decision in the caller's transaction, with an audit event."""
    row = get_reviewable(repo, result_id, tasks)
    _check_decidable(row, request)
    before = {"status": row.status.value, "text": draft_text(row), "version": row.version}
    distance = None
    if request.decision is Decision.approve:
        row.status, row.final_text = AiStatus.approved, draft_text(row)
    elif request.decision is Decision.edit:
        distance = Levenshtein.distance(before["text"], request.text)
        row.status, row.final_text = AiStatus.edited, request.text
    else:
        row.status = AiStatus.rejected
    try:
        repo.session.flush()  # UPDATE ... WHERE version = <seen>: a concurrent decision makes this fail
    except StaleDataError:
        repo.session.rollback()
        raise Conflict(f"AI result {result_id} was decided by someone else meanwhile; reload it") from None
    after = {"status": row.status.value, "text": row.final_text, "version": row.version, "reason": request.reason}
    if request.decision is not Decision.reject:
        after["applied"] = apply_approved(repo, row)
    record_event(
        repo, actor, f"review.{request.decision.value}", row, before=before, after=after, edit_distance=distance
    )
    return row


# What an approval writes back to the records, per task ("module:function" taking (repo, ai_result_id)).
APPROVAL_HOOKS = {"call_summary": "copilot.tasks.call_summary:apply_to_deal"}


def apply_approved(repo: Repo, row: AiResult) -> str | None:
    """Run the task's approval hook in the decision's transaction; returns what happened, for the audit log."""
    target = APPROVAL_HOOKS.get(row.task)
    if target is None:
        return None
    module, function = target.split(":")
    try:
        written = getattr(importlib.import_module(module), function)(repo, row.id)
    except InvalidInput as error:  # e.g. a call with no deal: the approval stands, nothing is written
        return f"not applied: {error}"
    return f"applied to {type(written).__name__.lower()} {getattr(written, 'id', '')}".strip()


def _check_decidable(row: AiResult, request: ReviewRequest) -> None:
    if request.version != row.version:
        raise Conflict(f"AI result {row.id} is at version {row.version}, you saw version {request.version}; reload it")
    if row.status is AiStatus.stale:
        raise Conflict(f"AI result {row.id} is stale: the record changed after it was produced; ask for a new one")
    if row.status is not AiStatus.pending:
        raise Conflict(f"AI result {row.id} is already {row.status.value}")
    if request.decision is Decision.edit and not (request.text or "").strip():
        raise InvalidInput("text: an edit needs the final text")
    if request.decision is Decision.approve:
        if blocked := blocking_guards(row):
            raise InvalidInput(f"decision: this output failed the {', '.join(blocked)} guard(s); edit or reject it")
        if commitments(row) and not request.confirm_commitments:
            raise InvalidInput(
                f"confirm_commitments: the draft commits to {', '.join(commitments(row))}; approve it explicitly"
            )


def record_event(
    repo: Repo,
    actor: str,
    action: str,
    row: AiResult | None = None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    edit_distance: int | None = None,
) -> AuditEvent:
    event = AuditEvent(
        workspace_id=repo.workspace_id,
        actor=actor,
        action=action,
        ai_result_id=row.id if row else None,
        subject_kind=row.subject_kind if row else None,
        subject_id=row.subject_id if row else None,
        task=row.task if row else None,
        before=before,
        after=after,
        edit_distance=edit_distance,
    )
    repo.session.add(event)
    return event


def queue(
    repo: Repo,
    tasks: list[str],
    *,
    status: AiStatus = AiStatus.pending,
    subject_kind: str | None = None,
    subject_id: int | None = None,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AiResult], int]:
    query = repo.select(AiResult).where(AiResult.task.in_(tasks), AiResult.status == status)
    if subject_kind:
        query = query.where(AiResult.subject_kind == subject_kind)
    if subject_id is not None:
        query = query.where(AiResult.subject_id == subject_id)
    total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = repo.all(query.order_by(AiResult.created_at, AiResult.id).offset(offset).limit(limit))
    return rows, total


def audit_events(
    repo: Repo,
    *,
    ticket_id: int | None = None,
    actor: str | None = None,
    task: str | None = None,
    since: datetime | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[AuditEvent], int]:
    query = select(AuditEvent).where(AuditEvent.workspace_id == repo.workspace_id)
    if ticket_id is not None:
        query = query.where(AuditEvent.subject_kind == "ticket", AuditEvent.subject_id == ticket_id)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if task:
        query = query.where(AuditEvent.task == task)
    if since:
        query = query.where(AuditEvent.at >= since)
    total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(repo.session.scalars(query.order_by(AuditEvent.at, AuditEvent.id).offset(offset).limit(limit)))
    return rows, total


def review_stats(repo: Repo) -> list[TaskStats]:
    """Acceptance rate, edit rate and mean edit distance per task, prompt version and model."""
    edits = (
        select(AuditEvent.ai_result_id, AuditEvent.edit_distance)
        .where(AuditEvent.workspace_id == repo.workspace_id, AuditEvent.action == "review.edit")
        .subquery()
    )
    query = (
        select(AiResult.task, AiResult.prompt_version, AiResult.model, AiResult.status, edits.c.edit_distance)
        .outerjoin(edits, edits.c.ai_result_id == AiResult.id)
        .where(AiResult.workspace_id == repo.workspace_id, AiResult.status.in_(REVIEWED))
    )
    groups: dict[tuple[str, str | None, str | None], dict[str, list[int]]] = {}
    for task, version, model, status, distance in repo.session.execute(query):
        group = groups.setdefault((task, version, model), {"approved": [], "edited": [], "rejected": []})
        if status is AiStatus.rejected:
            group["rejected"].append(0)
        elif distance is not None:  # edited, possibly sent since
            group["edited"].append(distance)
        else:
            group["approved"].append(0)
    stats = []
    for (task, version, model), g in sorted(groups.items(), key=lambda item: tuple(str(x) for x in item[0])):
        approved, edited, rejected = len(g["approved"]), len(g["edited"]), len(g["rejected"])
        total = approved + edited + rejected
        stats.append(
            TaskStats(
                task=task,
                prompt_version=version,
                model=model,
                decided=total,
                approved=approved,
                edited=edited,
                rejected=rejected,
                acceptance_rate=round((approved + edited) / total, 4),
                edit_rate=round(edited / total, 4),
                mean_edit_distance=round(sum(g["edited"]) / edited, 2) if edited else None,
            )
        )
    return stats
