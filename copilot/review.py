"""Human review: the queue, decisions with optimistic concurrency, the audit trail and review stats.

An output moves ``pending -> approved | edited | rejected`` (``stale`` when the customer wrote
again, ``sent`` once delivered). Every decision carries the version the reviewer saw, so of two
reviewers deciding at once exactly one wins; the other gets a Conflict.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, or_, select
from sqlalchemy.orm.exc import StaleDataError

from copilot.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from copilot.guards import GuardVerdict, detect_commitments
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
    text: str | None = Field(default=None, max_length=20_000, description="The reviewer's final text, for edit.")
    reason: str | None = Field(default=None, max_length=2_000, description="Why, for reject.")
    confirm_commitments: bool = Field(
        default=False, description="Explicit approval of a text that promises a refund, credit, deadline, ..."
    )
    override_guards: bool = Field(
        default=False, description="Admins only: approve an edit of an output that failed a blocking guard (audited)."
    )


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


CITATION_MARKER = re.compile(r"\s?\[S\d+\](?=[\s.,;:!?)]|$)")


def without_citations(text: str) -> str:
    """Customer-facing text without its [S1] source markers (they are for the reviewer, not the customer)."""
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", CITATION_MARKER.sub("", text)).strip()


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


def low_risk(row: AiResult) -> bool:
    """Safe to approve in a batch: no commitment, no failed guard, and (for a rewrite) it changed something."""
    unchanged = bool(row.content.get("result", {}).get("unchanged"))
    return not commitments(row) and not blocking_guards(row) and not unchanged


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


def decide(repo: Repo, result_id: int, request: ReviewRequest, *, actor: str, tasks: list[str],
           may_override: bool = False) -> AiResult:  # fmt: skip
    """Apply one reviewer decision in the caller's transaction, with an audit event.

    Approving and editing are held to the same rules: a text that commits to a refund, credit, discount, deadline
    or escalation needs ``confirm_commitments``; an output that failed a blocking guard is approved only as an edit
    that passes the task's guards again, or by an admin with ``override_guards`` (audited).
    """
    row = get_reviewable(repo, result_id, tasks)
    _check_decidable(repo, row, request, may_override)
    before = {"status": row.status.value, "text": draft_text(row), "version": row.version}
    distance = None
    delivered = _delivers(row.task)
    if request.decision is Decision.approve:
        text = draft_text(row)
        row.status, row.final_text = AiStatus.approved, without_citations(text) if delivered else text
    elif request.decision is Decision.edit:
        distance = Levenshtein.distance(before["text"], request.text)
        row.status, row.final_text = AiStatus.edited, without_citations(request.text) if delivered else request.text
    else:
        row.status = AiStatus.rejected
    try:
        repo.session.flush()  # UPDATE ... WHERE version = <seen>: a concurrent decision makes this fail
    except StaleDataError:
        repo.session.rollback()
        raise Conflict(f"AI result {result_id} was decided by someone else meanwhile; reload it") from None
    after = {"status": row.status.value, "text": row.final_text, "version": row.version, "reason": request.reason}
    if request.override_guards and blocking_guards(row):
        after["overrode_guards"] = blocking_guards(row)
    if request.decision is not Decision.reject:
        after["applied"] = apply_approved(repo, row)
        if delivered:
            after["superseded"] = supersede_siblings(repo, row, actor)
    record_event(
        repo, actor, f"review.{request.decision.value}", row, before=before, after=after, edit_distance=distance
    )
    return row


def _delivers(task: str) -> bool:
    return task in _delivered_tasks()


def supersede_siblings(repo: Repo, row: AiResult, actor: str) -> list[int]:
    """Approving a reply makes the ticket's other pending replies (and rewrites of them) ``superseded``, audited:
    a double reply must not be one click away."""
    ticket_id = _ticket_of(repo, row)
    if ticket_id is None:
        return []
    replies = repo.select(AiResult).where(AiResult.task.in_(_delivered_tasks()))
    drafts = repo.all(replies.where(AiResult.subject_kind == "ticket", AiResult.subject_id == ticket_id))
    rewrites = repo.all(
        replies.where(AiResult.subject_kind == "ai_result", AiResult.subject_id.in_([d.id for d in drafts]))
    )
    superseded = []
    for other in (*drafts, *rewrites):
        if other.id != row.id and other.status is AiStatus.pending:
            other.status = AiStatus.superseded
            after = {"status": "superseded", "by": row.id}
            record_event(repo, actor, "review.superseded", other, before={"status": "pending"}, after=after)
            superseded.append(other.id)
    return superseded


def _delivered_tasks() -> tuple[str, ...]:
    from copilot.tasks import registry

    return registry.delivered()


def _ticket_of(repo: Repo, row: AiResult) -> int | None:
    """The ticket a customer-facing result answers (a rewrite answers its draft's ticket)."""
    if row.subject_kind == "ticket":
        return row.subject_id
    if row.subject_kind == "ai_result" and row.subject_id is not None:
        draft = repo.get(AiResult, row.subject_id)
        return draft.subject_id if draft is not None and draft.subject_kind == "ticket" else None
    return None


def apply_approved(repo: Repo, row: AiResult) -> str | None:
    """Run the task's approval hook in the decision's transaction; returns what happened, for the audit log."""
    from copilot.tasks import registry

    hook = registry.tasks().get(row.task)
    if hook is None or hook.on_approve is None:
        return None
    try:
        written = hook.on_approve(repo, row.id)
    except InvalidInput as error:  # e.g. a call with no deal: the approval stands, nothing is written
        return f"not applied: {error}"
    return f"applied to {type(written).__name__.lower()} {getattr(written, 'id', '')}".strip()


def _check_decidable(repo: Repo, row: AiResult, request: ReviewRequest, may_override: bool) -> None:
    if request.version != row.version:
        raise Conflict(f"AI result {row.id} is at version {row.version}, you saw version {request.version}; reload it")
    if row.status is AiStatus.stale or not _subject_exists(repo, row):
        raise Conflict(f"AI result {row.id} is stale: the record changed after it was produced; ask for a new one")
    if row.status is not AiStatus.pending:
        raise Conflict(f"AI result {row.id} is already {row.status.value}")
    if request.decision is Decision.reject:
        return
    if request.decision is Decision.edit and not (request.text or "").strip():
        raise InvalidInput("text: an edit needs the final text")
    _check_guards(repo, row, request, may_override)
    text = request.text if request.decision is Decision.edit else draft_text(row)
    promised = commitments(row) if request.decision is Decision.approve else detect_commitments(text)
    if promised and not request.confirm_commitments:
        raise InvalidInput(
            f"confirm_commitments: the text commits to {', '.join(promised)}; confirm the commitment explicitly"
        )


def _check_guards(repo: Repo, row: AiResult, request: ReviewRequest, may_override: bool) -> None:
    blocked = blocking_guards(row)
    if not blocked:
        return
    if request.override_guards:
        if not may_override:
            raise PermissionDenied("override_guards: only an admin may approve past a failed guard")
        return
    if request.decision is Decision.approve:
        raise InvalidInput(f"decision: this output failed the {', '.join(blocked)} guard(s); edit or reject it")
    still = [v.name for v in recheck(repo, row, request.text or "") if not v.passed and v.severity.value == "block"]
    if still:
        raise InvalidInput(f"text: the edited text still fails the {', '.join(still)} guard(s); fix it or reject it")


def recheck(repo: Repo, row: AiResult, text: str) -> list[GuardVerdict]:
    """The task's blocking guards on an edited text (a task that cannot re-check keeps its verdicts)."""
    from copilot.tasks import registry

    task = registry.tasks().get(row.task)
    if task is None or task.check_edit is None:
        return [GuardVerdict.model_validate(v) for v in row.guard_verdicts]
    return task.check_edit(repo, row, text)


def _subject_exists(repo: Repo, row: AiResult) -> bool:
    from copilot.store.models import CRM_MODELS

    model = CRM_MODELS.get(row.subject_kind)
    return model is None or row.subject_id is None or repo.get(model, row.subject_id) is not None


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
    visible_tasks: list[str] | None = None,
    include_untasked: bool = True,
) -> tuple[list[AuditEvent], int]:
    """Audit events, oldest first, limited (items and total) to ``visible_tasks`` and, unless ``include_untasked``,
    to events about a task (workspace-level events such as key or head changes are for admins)."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == repo.workspace_id)
    if visible_tasks is not None:
        about_task = AuditEvent.task.in_(visible_tasks)
        query = query.where(or_(AuditEvent.task.is_(None), about_task) if include_untasked else about_task)
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
