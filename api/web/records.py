"""Ticket pages: the list (filters, sorting, ids), and one ticket with its thread, the customer beside it, the summary,
sentiment, the reply draft with its tone rewrites as diffs (apply / discard), a reply composer that sends through
review and delivery, status and assignee changes (audited), and the activity log."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import case, func, or_, select

from api.deps import Caller
from api.schemas import resolve_ref
from api.web.common import PageCaller, check_csrf, flash, query_string, render, take_flash
from api.web.customer import customer_context, sentiment_chart
from api.web.present import task_label
from api.web.review import decide_and_queue_delivery, form_text, unchanged_edit
from api.web.textdiff import word_diff
from copilot.auth import Permission
from copilot.delivery import prepare_delivery, webhook_config
from copilot.errors import CopilotError, InvalidInput, NotFound
from copilot.guards import commitment_patterns
from copilot.review import (
    PRIORITY_RANK,
    UNASSIGNED,
    Decision,
    ReviewRequest,
    commitments,
    draft_text,
    get_reviewable,
    record_event,
    without_citations,
)
from copilot.store import Repo
from copilot.store.models import (
    Account,
    AiResult,
    AiStatus,
    AuditEvent,
    Delivery,
    Message,
    Priority,
    Ticket,
    TicketStatus,
)
from copilot.tasks.sentiment import ticket_sentiment
from copilot.tasks.tones import workspace_tones

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
ACTIVE = "active"  # the status filter value for new, open and pending tickets
ACTIVE_STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.pending)
LIVE_REPLY = (AiStatus.pending, AiStatus.approved, AiStatus.edited, AiStatus.sent)
TICKET_SORTS = {
    "newest": "newest opened first",
    "oldest": "oldest opened first",
    "priority": "priority, then newest",
    "updated": "recently updated",
}

# Other pages add panels to the ticket page: each returns template context for its include (e.g. {"triage": ...}).
TicketPanel = Callable[[Repo, Caller, Ticket], dict[str, Any]]
TICKET_PANELS: list[TicketPanel] = []


def ticket_panel(panel: TicketPanel) -> TicketPanel:
    """Register ``panel(repo, caller, ticket) -> context`` for the ticket page (triage, insights, ...)."""
    TICKET_PANELS.append(panel)
    return panel


@ticket_panel
def triage_context(repo: Repo, _caller: Caller, ticket: Ticket) -> dict[str, Any]:
    """The triage panel (api/web/triage.py) as ``triage`` for ``_triage.html``."""
    from api.web.triage import triage_panel

    return {"triage": triage_panel(repo, ticket)}


@ticket_panel
def insights_context(repo: Repo, caller: Caller, ticket: Ticket) -> dict[str, Any]:
    """The CSAT and account-health panel (api/web/insights.py) as ``ticket_insights`` for ``_insights_ticket.html``."""
    from api.web.insights import ticket_insights

    return {"ticket_insights": ticket_insights(caller, repo, ticket)}


def ticket_url(ticket: Ticket, anchor: str = "") -> str:
    return f"/tickets/{quote(ticket.external_id or str(ticket.id), safe='')}{anchor}"


# -- the list ---------------------------------------------------------------------------------------------------
def ticket_query(repo: Repo, status: str, priority: str, assignee: str, account_id: int | None, sort: str) -> Any:
    query = repo.select(Ticket)
    if status == ACTIVE:
        query = query.where(Ticket.status.in_(ACTIVE_STATUSES))
    elif status:
        query = query.where(Ticket.status == choice(TicketStatus, status, "status"))
    if priority:
        query = query.where(Ticket.priority == choice(Priority, priority, "priority"))
    if assignee:
        query = query.where(Ticket.assignee.is_(None) if assignee == UNASSIGNED else Ticket.assignee == assignee)
    if account_id is not None:
        query = query.where(Ticket.account_id == account_id)
    if sort not in TICKET_SORTS:
        raise InvalidInput(f"sort: one of {', '.join(TICKET_SORTS)}")
    if sort == "priority":
        rank = [(Ticket.priority == p, r) for p, r in PRIORITY_RANK.items()]
        return query.order_by(case(*rank, else_=0).desc(), Ticket.opened_at.desc(), Ticket.id.desc())
    order = {
        "newest": (Ticket.opened_at.desc(), Ticket.id.desc()),
        "oldest": (Ticket.opened_at, Ticket.id),
        "updated": (Ticket.updated_at.desc(), Ticket.id.desc()),
    }[sort]
    return query.order_by(*order)


def choice(enum_type: Any, value: str, field: str) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        raise InvalidInput(f"{field}: one of {', '.join(e.value for e in enum_type)}") from None


@router.get("/tickets", response_class=HTMLResponse)
def tickets_page(
    request: Request,
    caller: PageCaller,
    status: str = "",
    priority: str = "",
    assignee: str = "",
    account: str = "",
    sort: str = "newest",
    page: int = 1,
) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    page = max(page, 1)
    with caller.repo() as repo:
        account_row = resolve_ref(repo, Account, account) if account else None
        query = ticket_query(repo, status, priority, assignee, account_row.id if account_row else None, sort)
        total = repo.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = repo.all(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
        pending = set(
            repo.session.scalars(
                repo.select(AiResult)
                .with_only_columns(AiResult.subject_id)
                .where(
                    AiResult.status == AiStatus.pending,
                    AiResult.subject_kind == "ticket",
                    AiResult.subject_id.in_([t.id for t in rows]),
                )
            )
        )
        accounts = repo.all(repo.select(Account).order_by(Account.name).limit(500))
        assignees = known_assignees(repo)
    filters = {"status": status, "priority": priority, "assignee": assignee, "account": account, "sort": sort}
    return render(
        request,
        "tickets.html",
        caller,
        tickets=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // PAGE_SIZE)),
        pending=pending,
        filters=filters,
        page_query=lambda n: query_string({**filters, "sort": sort if sort != "newest" else "", "page": n}),
        statuses=[s.value for s in TicketStatus],
        priorities=[p.value for p in sorted(Priority, key=lambda p: -PRIORITY_RANK[p])],
        accounts=accounts,
        account_names={a.id: a.name for a in accounts},
        assignees=assignees,
        sorts=TICKET_SORTS,
        active=ACTIVE,
        unassigned=UNASSIGNED,
        ticket_url=ticket_url,
    )


# -- one ticket -------------------------------------------------------------------------------------------------
@dataclass
class Replies:
    """The ticket's reply drafts and their tone rewrites, and which one the composer sends."""

    draft: AiResult | None
    rewrites: list[AiResult]
    chosen: AiResult | None
    mode: str  # review (pending: approve & send), send (approved, not delivered), sent, none
    text: str = ""
    delivery: Delivery | None = None


def replies_of(repo: Repo, ticket: Ticket, use: int | None) -> Replies:
    drafts = repo.all(
        repo.select(AiResult)
        .where(AiResult.task == "reply_draft", AiResult.subject_kind == "ticket", AiResult.subject_id == ticket.id)
        .order_by(AiResult.id.desc())
    )
    rewrites = (
        repo.all(
            repo.select(AiResult)
            .where(
                AiResult.task == "tone_rewrite",
                AiResult.subject_kind == "ai_result",
                AiResult.subject_id.in_([d.id for d in drafts]),
            )
            .order_by(AiResult.id.desc())
        )
        if drafts
        else []
    )
    draft = next((d for d in drafts if d.status in LIVE_REPLY), drafts[0] if drafts else None)
    everything = [*drafts, *rewrites]
    chosen = next((r for r in everything if r.id == use and r.status is AiStatus.pending), None)
    chosen = chosen or next((r for r in everything if r.status in (AiStatus.approved, AiStatus.edited)), None)
    chosen = chosen or (draft if draft is not None and draft.status in (AiStatus.pending, AiStatus.sent) else None)
    own = [r for r in rewrites if draft is not None and r.subject_id == draft.id]
    replies = Replies(draft=draft, rewrites=own, chosen=chosen, mode="none")
    if chosen is not None:
        replies.mode = {AiStatus.pending: "review", AiStatus.sent: "sent"}.get(chosen.status, "send")
        replies.text = without_citations(draft_text(chosen)) if replies.mode == "review" else chosen.final_text or ""
        replies.delivery = repo.session.scalar(repo.select(Delivery).where(Delivery.ai_result_id == chosen.id))
    return replies


def reply_of_ticket(repo: Repo, ticket: Ticket, result_id: int) -> AiResult:
    """A reply draft of this ticket, or a rewrite of one (404 for anything else: no sending other tickets' drafts)."""
    row = repo.get(AiResult, result_id)
    draft = repo.get(AiResult, row.subject_id) if row is not None and row.subject_kind == "ai_result" else row
    if (
        row is None
        or draft is None
        or row.task not in ("reply_draft", "tone_rewrite")
        or (draft.subject_kind, draft.subject_id) != ("ticket", ticket.id)
    ):
        raise NotFound(f"no reply {result_id} on ticket {ticket.external_id or ticket.id}")
    return row


def activity(repo: Repo, caller: Caller, ticket: Ticket, result_ids: list[int]) -> list[AuditEvent]:
    """The latest audit events about the ticket and its AI results that the role may see."""
    about = (AuditEvent.subject_kind == "ticket") & (AuditEvent.subject_id == ticket.id)
    if result_ids:
        about = or_(about, AuditEvent.ai_result_id.in_(result_ids))
    visible = or_(AuditEvent.task.is_(None), AuditEvent.task.in_(caller.principal.reviewable_tasks()))
    query = select(AuditEvent).where(AuditEvent.workspace_id == repo.workspace_id, about, visible)
    return list(repo.session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(12)))


def rewrite_diff(row: AiResult) -> list:
    result = row.content.get("result", {})
    return word_diff(result.get("original", ""), result.get("text", ""))


def known_assignees(repo: Repo) -> list[str]:
    return sorted(filter(None, repo.session.scalars(repo.select(Ticket).with_only_columns(Ticket.assignee).distinct())))


@router.get("/tickets/{ticket_ref}", response_class=HTMLResponse)
def ticket_page(ticket_ref: str, request: Request, caller: PageCaller, use: int | None = None) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        messages = repo.all(
            repo.select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at, Message.id)
        )
        results = repo.all(
            repo.select(AiResult)
            .where(AiResult.subject_kind == "ticket", AiResult.subject_id == ticket.id)
            .order_by(AiResult.id.desc())
        )
        summary = next((r for r in results if r.task == "ticket_summary"), None)
        replies = replies_of(repo, ticket, use)
        sentiment = ticket_sentiment(repo, caller.services.sentiment, ticket.id)
        chart = sentiment_chart(
            "Sentiment of this ticket's customer messages",
            sentiment.messages,
            refs={ticket.id: ticket.external_id or str(ticket.id)},
        )
        chart.head = sentiment.head
        extra: dict[str, Any] = {}
        for panel in TICKET_PANELS:
            extra.update(panel(repo, caller, ticket))
        context = {
            "ticket": ticket,
            "ref": ticket.external_id or str(ticket.id),
            "url": ticket_url(ticket),
            "messages": messages,
            "summary": summary,
            "replies": replies,
            "diffs": {r.id: rewrite_diff(r) for r in replies.rewrites},
            "sentiment": sentiment,
            "chart": chart,
            "customer": customer_context(repo, caller.principal, caller.services.sentiment, ticket),
            "tones": sorted(workspace_tones(repo)),
            "webhook": webhook_config(repo) is not None,
            "events": activity(repo, caller, ticket, [r.id for r in results] + [r.id for r in replies.rewrites]),
            "assignees": known_assignees(repo),
        }
    return render(
        request,
        "ticket.html",
        caller,
        **context,
        **extra,
        statuses=[s.value for s in TicketStatus],
        commitments=commitments,
        commitment_patterns=commitment_patterns(),
        task_label=task_label,
        can_run=caller.principal.can(Permission.run_support),
        flash=take_flash(request),
    )


@router.post("/tickets/{ticket_ref}/act")
def ticket_action(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    action: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    tone: Annotated[str | None, Form()] = None,
    draft_id: Annotated[int | None, Form()] = None,
) -> RedirectResponse:
    """Summarise, draft, or rewrite the latest draft in a tone (the rewrite shows on the ticket, as a diff)."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_support)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
    try:
        if action == "summarize":
            caller.run_task("ticket_summary", {"ticket_id": ticket.id})
            flash(request, "ok", "Summary refreshed.")
        elif action == "draft":
            outcome = caller.run_task("reply_draft", {"ticket_id": ticket.id})
            flash(request, "ok", f"Draft {outcome.ai_result_id} is ready in the composer (and the review queue).")
        elif action == "rewrite" and tone and draft_id:
            outcome = caller.run_task("tone_rewrite", {"tone": tone, "draft_id": draft_id})
            flash(request, "ok", f"{tone.capitalize()} rewrite {outcome.ai_result_id} is below: apply or discard it.")
        else:
            flash(request, "error", f"unknown action '{action}'")
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(ticket_url(ticket, "#draft" if action == "rewrite" else ""), status_code=303)


def change_ticket(repo: Repo, ticket: Ticket, actor: str, status: str | None, assignee: str | None) -> dict[str, Any]:
    """Set status and/or assignee, with an audit event of what changed; returns the changes."""
    before = {"status": ticket.status.value, "assignee": ticket.assignee}
    if status:
        new = choice(TicketStatus, status, "status")
        if new in (TicketStatus.solved, TicketStatus.closed) and ticket.closed_at is None:
            ticket.closed_at = datetime.now(UTC)
        elif new not in (TicketStatus.solved, TicketStatus.closed):
            ticket.closed_at = None
        ticket.status = new
    if assignee is not None:
        ticket.assignee = assignee.strip()[:120] or None
    after = {"status": ticket.status.value, "assignee": ticket.assignee}
    changes = {k: v for k, v in after.items() if before[k] != v}
    if changes:
        before = {k: before[k] for k in changes}
        record_event(repo, actor, "ticket.updated", before=before, after=changes, subject=("ticket", ticket.id))
    return changes


@router.post("/tickets/{ticket_ref}/update")
def ticket_update(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    csrf: Annotated[str, Form()],
    status: Annotated[str, Form()] = "",
    assignee: Annotated[str | None, Form(max_length=120)] = None,
) -> RedirectResponse:
    """Change the ticket's status or assignee (agents and admins; audited)."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_support)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        try:
            changes = change_ticket(repo, ticket, caller.principal.actor, status, assignee)
            words = ", ".join(f"{k} {v or 'nobody'}" for k, v in changes.items())
            flash(request, "ok", f"Ticket updated: {words}." if changes else "Nothing changed.")
        except CopilotError as error:
            flash(request, "error", str(error))
        url = ticket_url(ticket)
    return RedirectResponse(url, status_code=303)


@router.post("/tickets/{ticket_ref}/reply")
def ticket_reply(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    background: BackgroundTasks,
    csrf: Annotated[str, Form()],
    result_id: Annotated[int, Form()],
    version: Annotated[int, Form()],
    text: Annotated[str, Form(max_length=20_000)],
    confirm_commitments: Annotated[bool, Form()] = False,
    then_status: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """Send the composer's text: approves the draft (or an edit of it) in the reviewer's name, supersedes the
    ticket's other pending replies, and hands it to delivery; optionally sets the ticket's status after."""
    check_csrf(request, csrf)
    text = form_text(text) or ""
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        url = ticket_url(ticket)
        row = reply_of_ticket(repo, ticket, result_id)
        unchanged = unchanged_edit(row, text)
        webhook = webhook_config(repo) is not None
    try:
        if then_status:
            choice(TicketStatus, then_status, "then_status")  # a bad status is refused before anything is sent
        decision = Decision.approve if unchanged else Decision.edit
        review = ReviewRequest(
            decision=decision,
            version=version,
            text=None if unchanged else text,
            confirm_commitments=confirm_commitments,
        )
        decide_and_queue_delivery(caller, background, result_id, review)
        where = "is being sent through the webhook" if webhook else "waits in the export (no webhook is configured)"
        message = f"Reply {result_id} {'approved' if unchanged else 'edited and approved'}; it {where}."
        if then_status:
            with caller.repo() as repo:
                ticket = resolve_ref(repo, Ticket, ticket_ref)
                changed = change_ticket(repo, ticket, caller.principal.actor, then_status, None)
            message += f" Status {changed['status']}." if changed else ""
        flash(request, "ok", message)
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(url + "#composer", status_code=303)


@router.post("/tickets/{ticket_ref}/send")
def ticket_send(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    background: BackgroundTasks,
    csrf: Annotated[str, Form()],
    result_id: Annotated[int, Form()],
) -> RedirectResponse:
    """Deliver (again) an approved reply of this ticket through the webhook."""
    check_csrf(request, csrf)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        url = ticket_url(ticket, "#composer")
        row = get_reviewable(repo, reply_of_ticket(repo, ticket, result_id).id, caller.principal.reviewable_tasks())
        try:
            delivery = prepare_delivery(repo, row.id)
        except CopilotError as error:
            flash(request, "error", str(error))
            return RedirectResponse(url, status_code=303)
    if delivery is None:
        flash(request, "error", "No webhook is configured: approved replies wait in GET /v1/review/export.")
    else:
        background.add_task(caller.services.deliver, caller.principal.workspace_slug, result_id)
        flash(request, "ok", f"Sending reply {result_id} through the webhook.")
    return RedirectResponse(url, status_code=303)


@router.post("/tickets/{ticket_ref}/discard")
def ticket_discard(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    background: BackgroundTasks,
    csrf: Annotated[str, Form()],
    result_id: Annotated[int, Form()],
    version: Annotated[int, Form()],
) -> RedirectResponse:
    """Discard a tone rewrite shown on the ticket (a rejection with that reason, audited)."""
    check_csrf(request, csrf)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        url = ticket_url(ticket, "#draft")
        row = reply_of_ticket(repo, ticket, result_id)
    try:
        if row.task != "tone_rewrite":
            raise InvalidInput("result_id: only a rewrite is discarded here; reject a draft in the review queue")
        review = ReviewRequest(decision=Decision.reject, version=version, reason="discarded on the ticket page")
        decide_and_queue_delivery(caller, background, result_id, review)
        flash(request, "ok", f"Rewrite {result_id} discarded.")
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(url, status_code=303)
