"""Human review: the queue, decisions with optimistic concurrency, the audit trail and review stats.

An output moves ``pending -> approved | edited | rejected`` (``stale`` when the customer wrote
again, ``sent`` once delivered). Every decision carries the version the reviewer saw, so of two
reviewers deciding at once exactly one wins; the other gets a Conflict.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from rapidfuzz.distance import Levenshtein
from sqlalchemy import Select, and_, case, func, or_, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from copilot.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from copilot.guards import GuardVerdict, detect_commitments
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuditEvent,
    AuthorKind,
    Call,
    Deal,
    Message,
    NpsAdvocacy,
    NpsResponse,
    Priority,
    Ticket,
    utc,
)

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
    if delivered:
        _lock_ticket(repo, row)
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
    if request.confirm_commitments and request.decision is not Decision.reject:
        after["confirm_commitments"] = True  # the reviewer's explicit yes to its refund, credit, deadline, ...
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


def _lock_ticket(repo: Repo, row: AiResult) -> None:
    """Decisions on one ticket's replies take turns (PostgreSQL row lock): two reviewers approving two of its drafts
    at once would each supersede the other's and deadlock; this way the second one gets its 409."""
    ticket_id = _ticket_of(repo, row)
    if ticket_id is not None:
        repo.session.execute(select(Ticket.id).where(Ticket.id == ticket_id).with_for_update())


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
        if request.decision is Decision.edit and _rechecks_every_edit(row.task):
            _check_edit(repo, row, request)
        return
    if request.override_guards:
        if not may_override:
            raise PermissionDenied("override_guards: only an admin may approve past a failed guard")
        return
    if request.decision is Decision.approve:
        raise InvalidInput(f"decision: this output failed the {', '.join(blocked)} guard(s); edit or reject it")
    _check_edit(repo, row, request)


def _check_edit(repo: Repo, row: AiResult, request: ReviewRequest) -> None:
    still = [v.name for v in recheck(repo, row, request.text or "") if not v.passed and v.severity.value == "block"]
    if still:
        raise InvalidInput(f"text: the edited text still fails the {', '.join(still)} guard(s); fix it or reject it")


def _rechecks_every_edit(task_name: str) -> bool:
    """Tasks whose every edit is held to their guards (``extra={"recheck_edits": True}``), not only failed ones."""
    from copilot.tasks import registry

    task = registry.tasks().get(task_name)
    return bool(task and task.extra.get("recheck_edits"))


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
    subject: tuple[str, int] | None = None,
) -> AuditEvent:
    """Append one audit event about an AI result, or about a record (``subject`` = (kind, id)) such as a ticket."""
    kind, subject_id = (row.subject_kind, row.subject_id) if row else subject or (None, None)
    event = AuditEvent(
        workspace_id=repo.workspace_id,
        actor=actor,
        action=action,
        ai_result_id=row.id if row else None,
        subject_kind=kind,
        subject_id=subject_id,
        task=row.task if row else None,
        before=before,
        after=after,
        edit_distance=edit_distance,
    )
    repo.session.add(event)
    return event


class QueueOrder(str, enum.Enum):
    work = "work"  # priority, then SLA breach risk (longest-waiting customer first), then age
    oldest = "oldest"
    newest = "newest"


UNASSIGNED = "-"  # the assignee filter value for items nobody owns
PRIORITY_RANK = {Priority.urgent: 3, Priority.high: 2, Priority.normal: 1, Priority.low: 0}
SLA_TARGETS = {  # time to the next reply after a customer wrote, per ticket priority
    Priority.urgent: timedelta(hours=1),
    Priority.high: timedelta(hours=4),
    Priority.normal: timedelta(hours=24),
    Priority.low: timedelta(hours=72),
}
AT_RISK_SHARE = 0.75  # an SLA is at risk once this share of its target has passed


class QueueFilters(BaseModel):
    """What the review queue is narrowed to (every filter optional; all given ones apply)."""

    tasks: list[str] | None = None
    priorities: list[Priority] = Field(default_factory=list)
    assignee: str | None = Field(default=None, description=f"A ticket assignee or deal owner; '{UNASSIGNED}' = nobody.")
    account_id: int | None = None
    subject_kind: str | None = None
    subject_id: int | None = None


class QueueCounts(BaseModel):
    """How many items each filter value would show, with the other filters applied (as in a help desk's views)."""

    total: int
    tasks: dict[str, int]
    priorities: dict[str, int]
    assignees: dict[str, int]
    accounts: dict[int, int]


class Sla(BaseModel):
    priority: Priority
    waiting_since: datetime
    due_at: datetime
    state: str = Field(description="breached, at_risk or ok")


class QueueContext(BaseModel):
    """What a reviewer needs to see about an item before opening it: whose it is and how urgent."""

    ticket_id: int | None = None
    ticket_ref: str | None = None
    subject: str | None = None
    customer: str | None = None
    account_id: int | None = None
    account: str | None = None
    priority: Priority | None = None
    assignee: str | None = None
    tone: str | None = None
    call_id: int | None = None
    deal_id: int | None = None
    deal_ref: str | None = None
    sla: Sla | None = None


def _subject_columns() -> dict[str, Any]:
    """The item's ticket (a rewrite's is its draft's), call and deal, as joinable aliases and derived columns."""
    parent, ticket, call, deal = aliased(AiResult), aliased(Ticket), aliased(Call), aliased(Deal)
    response, advocacy = aliased(NpsResponse), aliased(NpsAdvocacy)  # an NPS thank-you or follow-up, and its sender
    ticket_id = case(
        (AiResult.subject_kind == "ticket", AiResult.subject_id),
        (parent.subject_kind == "ticket", parent.subject_id),
        else_=None,
    )
    waiting = (
        select(func.max(Message.sent_at))
        .where(Message.ticket_id == ticket.id, Message.author_kind == AuthorKind.customer)
        .correlate(ticket)
        .scalar_subquery()
    )
    rank = case(*((ticket.priority == p, r) for p, r in PRIORITY_RANK.items()), else_=PRIORITY_RANK[Priority.normal])
    return {
        "parent": parent,
        "ticket": ticket,
        "call": call,
        "deal": deal,
        "ticket_id": ticket_id,
        "rank": rank,
        "waiting": func.coalesce(waiting, ticket.opened_at, AiResult.created_at),
        "response": response,
        "advocacy": advocacy,
        "account_id": func.coalesce(ticket.account_id, call.account_id, deal.account_id, response.account_id),
        "assignee": func.coalesce(ticket.assignee, deal.owner, advocacy.owner),
    }


def _queue_select(repo: Repo, columns: dict[str, Any], *selected: Any) -> Select:
    parent, ticket, call, deal = columns["parent"], columns["ticket"], columns["call"], columns["deal"]
    response, advocacy = columns["response"], columns["advocacy"]
    same = AiResult.workspace_id
    return (
        select(*selected)
        .select_from(AiResult)
        .outerjoin(
            parent,
            and_(AiResult.subject_kind == "ai_result", parent.id == AiResult.subject_id, parent.workspace_id == same),
        )
        .outerjoin(ticket, and_(ticket.id == columns["ticket_id"], ticket.workspace_id == same))
        .outerjoin(
            call, and_(AiResult.subject_kind == "call", call.id == AiResult.subject_id, call.workspace_id == same)
        )
        .outerjoin(deal, and_(deal.id == call.deal_id, deal.workspace_id == same))
        .outerjoin(
            response,
            and_(
                AiResult.subject_kind == "nps_response",
                response.id == AiResult.subject_id,
                response.workspace_id == same,
            ),
        )
        .outerjoin(advocacy, and_(advocacy.response_id == response.id, advocacy.workspace_id == same))
        .where(AiResult.workspace_id == repo.workspace_id)
    )


def _filtered(query: Select, columns: dict[str, Any], filters: QueueFilters, skip: str | None = None) -> Select:
    if filters.tasks is not None and skip != "tasks":
        query = query.where(AiResult.task.in_(filters.tasks))
    if filters.priorities and skip != "priorities":
        query = query.where(columns["ticket"].priority.in_(filters.priorities))
    if filters.assignee is not None and skip != "assignee":
        assignee = columns["assignee"]
        query = query.where(assignee.is_(None) if filters.assignee == UNASSIGNED else assignee == filters.assignee)
    if filters.account_id is not None and skip != "account":
        query = query.where(columns["account_id"] == filters.account_id)
    if filters.subject_kind:
        query = query.where(AiResult.subject_kind == filters.subject_kind)
    if filters.subject_id is not None:
        query = query.where(AiResult.subject_id == filters.subject_id)
    return query


def _ordering(columns: dict[str, Any], order: QueueOrder) -> list[Any]:
    if order is QueueOrder.oldest:
        return [AiResult.created_at, AiResult.id]
    if order is QueueOrder.newest:
        return [AiResult.created_at.desc(), AiResult.id.desc()]
    return [columns["rank"].desc(), columns["waiting"], AiResult.created_at, AiResult.id]


def queue(
    repo: Repo,
    tasks: list[str],
    *,
    status: AiStatus = AiStatus.pending,
    subject_kind: str | None = None,
    subject_id: int | None = None,
    priorities: list[Priority] | None = None,
    assignee: str | None = None,
    account_id: int | None = None,
    order: QueueOrder | str = QueueOrder.work,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[AiResult], int]:
    """Results of ``tasks`` in ``status``, filtered, in work order by default: ticket priority, then SLA breach risk
    (within a priority, the customer who has waited longest is closest to a breach), then age."""
    filters = QueueFilters(
        tasks=tasks,
        priorities=priorities or [],
        assignee=assignee,
        account_id=account_id,
        subject_kind=subject_kind,
        subject_id=subject_id,
    )
    columns = _subject_columns()
    query = _filtered(_queue_select(repo, columns, AiResult.id).where(AiResult.status == status), columns, filters)
    total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ids = list(repo.session.scalars(query.order_by(*_ordering(columns, QueueOrder(order))).offset(offset).limit(limit)))
    rows = {row.id: row for row in repo.all(repo.select(AiResult).where(AiResult.id.in_(ids)))} if ids else {}
    return [rows[i] for i in ids if i in rows], total


def queue_counts(
    repo: Repo, allowed: list[str], filters: QueueFilters, *, status: AiStatus = AiStatus.pending
) -> QueueCounts:
    """Counts per task, priority, assignee and account among the ``allowed`` tasks; each facet is counted with the
    other filters applied, so a count says what choosing that value would show."""
    columns = _subject_columns()
    keys = (AiResult.task, columns["ticket"].priority, columns["assignee"], columns["account_id"])
    base = _queue_select(repo, columns, *keys, func.count()).where(
        AiResult.status == status, AiResult.task.in_(allowed)
    )

    def facet(skip: str | None, position: int) -> dict[Any, int]:
        counted: dict[Any, int] = {}
        for row in repo.session.execute(_filtered(base, columns, filters, skip).group_by(*keys)):
            key = row[position]
            if position == 2:
                key = key or UNASSIGNED
            elif isinstance(key, enum.Enum):
                key = key.value
            if key is not None:
                counted[key] = counted.get(key, 0) + row[-1]
        return counted

    return QueueCounts(
        total=sum(facet(None, 0).values()),
        tasks=facet("tasks", 0),
        priorities=facet("priorities", 1),
        assignees=facet("assignee", 2),
        accounts=facet("account", 3),
    )


def sla_for(priority: Priority, waiting_since: datetime, now: datetime | None = None) -> Sla:
    """When the next reply is due after the customer's last message, and whether that is breached or close."""
    now = now or datetime.now(UTC)
    waiting_since = utc(waiting_since, keep_offset=True)
    target = SLA_TARGETS[priority]
    due = waiting_since + target
    state = "breached" if now >= due else "at_risk" if now - waiting_since >= target * AT_RISK_SHARE else "ok"
    return Sla(priority=priority, waiting_since=waiting_since, due_at=due, state=state)


def queue_context(repo: Repo, rows: list[AiResult], now: datetime | None = None) -> dict[int, QueueContext]:
    """Customer, account, ticket subject, tone and SLA of each item (a few queries for the whole page)."""
    drafts = {r.id: r for r in _loaded(repo, AiResult, [r.subject_id for r in rows if r.subject_kind == "ai_result"])}
    ticket_of = {r.id: _ticket_id_of(r, drafts) for r in rows}
    tickets = {t.id: t for t in _loaded(repo, Ticket, list(ticket_of.values()))}
    calls = {c.id: c for c in _loaded(repo, Call, [r.subject_id for r in rows if r.subject_kind == "call"])}
    deals = {d.id: d for d in _loaded(repo, Deal, [c.deal_id for c in calls.values()])}
    waiting = _last_customer_messages(repo, list(tickets))
    account_ids = [t.account_id for t in tickets.values()] + [c.account_id for c in calls.values()]
    accounts = {a.id: a for a in _loaded(repo, Account, account_ids + [d.account_id for d in deals.values()])}
    contexts = {}
    for row in rows:
        ticket = tickets.get(ticket_of[row.id])
        call = calls.get(row.subject_id) if row.subject_kind == "call" else None
        deal = deals.get(call.deal_id) if call is not None else None
        contexts[row.id] = _context(row, ticket, call, deal, accounts, waiting, now)
    return contexts | _nps_contexts(repo, rows)


def _nps_contexts(repo: Repo, rows: list[AiResult]) -> dict[int, QueueContext]:
    """An NPS thank-you or follow-up: the respondent, their account and score, and who sends it."""
    responses = {
        r.id: r for r in _loaded(repo, NpsResponse, [r.subject_id for r in rows if r.subject_kind == "nps_response"])
    }
    if not responses:
        return {}
    senders = {
        a.response_id: a.owner for a in repo.all(repo.select(NpsAdvocacy).where(NpsAdvocacy.response_id.in_(responses)))
    }
    contexts = {}
    for row in rows:
        response = responses.get(row.subject_id) if row.subject_kind == "nps_response" else None
        if response is not None:
            contexts[row.id] = QueueContext(
                subject=f"NPS {response.score}/10 · {response.external_id or response.id}",
                customer=response.contact.name if response.contact else None,
                account_id=response.account_id,
                account=response.account.name if response.account else None,
                assignee=senders.get(response.id),
            )
    return contexts


def _context(
    row: AiResult,
    ticket: Ticket | None,
    call: Call | None,
    deal: Deal | None,
    accounts: dict[int, Account],
    waiting: dict[int, datetime],
    now: datetime | None,
) -> QueueContext:
    tone = row.content.get("result", {}).get("tone") if row.task == "tone_rewrite" else None
    if ticket is not None:
        account = accounts.get(ticket.account_id or 0)
        return QueueContext(
            ticket_id=ticket.id,
            ticket_ref=ticket.external_id or str(ticket.id),
            subject=ticket.subject,
            customer=ticket.contact.name if ticket.contact else None,
            account_id=account.id if account else None,
            account=account.name if account else None,
            priority=ticket.priority,
            assignee=ticket.assignee,
            tone=tone,
            sla=sla_for(ticket.priority, waiting.get(ticket.id) or ticket.opened_at, now),
        )
    if call is not None:
        account = accounts.get(call.account_id or (deal.account_id if deal else None) or 0)
        customers = [p.get("name") for p in call.participants or [] if p.get("role") == "customer" and p.get("name")]
        return QueueContext(
            subject=call.title,
            customer=", ".join(customers[:2]) or None,
            account_id=account.id if account else None,
            account=account.name if account else None,
            assignee=deal.owner if deal else None,
            call_id=call.id,
            deal_id=deal.id if deal else None,
            deal_ref=(deal.external_id or str(deal.id)) if deal else None,
        )
    return QueueContext(tone=tone)


def _ticket_id_of(row: AiResult, drafts: dict[int, AiResult]) -> int | None:
    if row.subject_kind == "ticket":
        return row.subject_id
    draft = drafts.get(row.subject_id) if row.subject_kind == "ai_result" else None
    return draft.subject_id if draft is not None and draft.subject_kind == "ticket" else None


def _loaded(repo: Repo, model: type, ids: list[int | None]) -> list[Any]:
    wanted = sorted({i for i in ids if i is not None})
    return repo.all(repo.select(model).where(model.id.in_(wanted))) if wanted else []


def _last_customer_messages(repo: Repo, ticket_ids: list[int]) -> dict[int, datetime]:
    if not ticket_ids:
        return {}
    query = (
        select(Message.ticket_id, func.max(Message.sent_at))
        .where(
            Message.workspace_id == repo.workspace_id,
            Message.ticket_id.in_(ticket_ids),
            Message.author_kind == AuthorKind.customer,
        )
        .group_by(Message.ticket_id)
    )
    return {ticket_id: sent for ticket_id, sent in repo.session.execute(query) if sent is not None}


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
