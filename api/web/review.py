"""The review queue page: compact cards in work order (priority, SLA breach risk, age) with filters and counts;
each opens to its thread, sources and guard verdicts; approve, edit, reject (with a reason, undoable), batch approve.
Every decision brings the reviewer back to the same page, filters and next item."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from api.deps import Caller
from api.schemas import IdPath, resolve_ref
from api.web.common import PageCaller, check_csrf, flash, query_string, render, take_flash
from api.web.present import call_summary_of, display_text, task_label
from api.web.textdiff import word_diff
from copilot.delivery import prepare_delivery
from copilot.errors import CopilotError, InvalidInput, PermissionDenied
from copilot.guards import commitment_patterns
from copilot.review import (
    PRIORITY_RANK,
    UNASSIGNED,
    Decision,
    QueueContext,
    QueueFilters,
    ReviewRequest,
    blocking_guards,
    commitments,
    decide,
    draft_text,
    low_risk,
    queue,
    queue_context,
    queue_counts,
    without_citations,
)
from copilot.store import Repo
from copilot.store.models import Account, AiResult, AiStatus, Message, Priority, Ticket

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
THREAD_TAIL = 8
PREVIEW_CHARS = 240
REJECT_REASONS = ("wrong facts", "wrong tone", "does not answer the question", "not needed", "duplicate")


class QueueView(BaseModel):
    """The queue a reviewer is looking at: its filters and page (what a decision must come back to)."""

    task: str = ""
    priority: str = ""
    assignee: str = ""
    account: str = ""
    page: int = 1

    @classmethod
    def from_query(cls, raw: str) -> QueueView:
        """The view a form's ``return_to`` names; unknown keys and malformed values are dropped."""
        values = {k: v[0] for k, v in parse_qs(raw or "", max_num_fields=10).items() if k in cls.model_fields}
        page = values.pop("page", "1")
        view = cls(**{k: v[:120] for k, v in values.items()})
        view.page = int(page) if page.isdigit() and len(page) < 6 else 1
        return view

    def query(self, **changes: Any) -> str:
        """This view's query string with ``changes`` (page 1 left out)."""
        values = {**self.model_dump(), **changes}
        return query_string({**values, "page": values["page"] if values["page"] != 1 else None})

    def priority_filter(self) -> list[Priority]:
        if not self.priority:
            return []
        try:
            return [Priority(self.priority)]
        except ValueError:
            raise InvalidInput(f"priority: unknown priority '{self.priority}'") from None


def parse_batch_items(values: list[str]) -> list[tuple[int, int]]:
    """``id:version`` pairs from the batch form; anything else is a 422 naming the bad value."""
    pairs = []
    for value in values:
        if not re.fullmatch(r"\d{1,18}:\d{1,9}", value):
            raise InvalidInput(f"item: expected <result id>:<version>, got '{value[:40]}'")
        result_id, version = value.split(":")
        pairs.append((int(result_id), int(version)))
    return pairs


def review_item(repo: Repo, row: AiResult, context: QueueContext) -> dict:
    """What the reviewer sees for one result: a one-line card, and on opening it the thread or original it
    answers, its sources and guard verdicts."""
    ticket = repo.get(Ticket, context.ticket_id) if context.ticket_id else None
    messages = (
        repo.all(
            repo.select(Message)
            .where(Message.ticket_id == ticket.id)
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(THREAD_TAIL)
        )
        if ticket
        else []
    )
    result = row.content.get("result", {})
    text = display_text(row)
    summary = call_summary_of(row)
    original = result.get("original") if row.task == "tone_rewrite" else None
    return {
        "row": row,
        "label": task_label(row.task),
        "context": context,
        "text": text,
        "preview": " ".join((summary.summary if summary else text).split())[:PREVIEW_CHARS],
        "call": summary,
        "ticket": ticket,
        "messages": list(reversed(messages)),
        "original": original,
        "diff": word_diff(original, result.get("text", "")) if isinstance(original, str) else None,
        "unchanged": bool(result.get("unchanged")),
        "sources": result.get("sources") or [],
        "verdicts": row.guard_verdicts,
        "commitments": commitments(row),
        "blocked": blocking_guards(row),
        "low_risk": low_risk(row),
        "fallback": row.content.get("fallback_reason") if row.content.get("used_fallback") else None,
    }


def queue_filters(repo: Repo, caller: Caller, view: QueueView) -> QueueFilters:
    allowed = caller.principal.reviewable_tasks()
    if view.task and view.task not in allowed:
        raise InvalidInput(f"task: '{view.task}' is not a task your role reviews ({', '.join(allowed)})")
    account_id = resolve_ref(repo, Account, view.account).id if view.account else None
    return QueueFilters(
        tasks=[view.task] if view.task else None,
        priorities=view.priority_filter(),
        assignee=view.assignee or None,
        account_id=account_id,
    )


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    caller: PageCaller,
    task: str = "",
    priority: str = "",
    assignee: str = "",
    account: str = "",
    page: int = 1,
) -> HTMLResponse:
    if not caller.principal.reviewable_tasks():
        raise PermissionDenied(f"role '{caller.principal.role.value}' may not review AI results")
    view = QueueView(task=task, priority=priority, assignee=assignee, account=account, page=max(page, 1))
    with caller.repo() as repo:
        filters = queue_filters(repo, caller, view)
        rows, total = page_of_queue(repo, caller, filters, view)
        contexts = queue_context(repo, rows)
        items = [review_item(repo, row, contexts[row.id]) for row in rows]
        counts = queue_counts(repo, caller.principal.reviewable_tasks(), filters)
        accounts = {a.id: a for a in repo.all(repo.select(Account).where(Account.id.in_(list(counts.accounts))))}
    return render(
        request,
        "review.html",
        caller,
        items=items,
        total=total,
        view=view,
        pages=max(1, -(-total // PAGE_SIZE)),
        tasks=caller.principal.reviewable_tasks(),
        counts=counts,
        accounts=sorted(accounts.values(), key=lambda a: a.name.lower()),
        priorities=[p.value for p in sorted(Priority, key=lambda p: -PRIORITY_RANK[p])],
        unassigned=UNASSIGNED,
        reject_reasons=REJECT_REASONS,
        task_label=task_label,
        commitment_patterns=commitment_patterns(),
        flash=take_flash(request),
    )


def page_of_queue(repo: Repo, caller: Caller, filters: QueueFilters, view: QueueView) -> tuple[list[AiResult], int]:
    """The view's page of the queue; a page past the end (the last items were decided) shows the last page."""
    arguments = {
        "status": AiStatus.pending,
        "priorities": filters.priorities,
        "assignee": filters.assignee,
        "account_id": filters.account_id,
        "limit": PAGE_SIZE,
    }
    tasks = filters.tasks or caller.principal.reviewable_tasks()
    rows, total = queue(repo, tasks, offset=(view.page - 1) * PAGE_SIZE, **arguments)
    last = max(1, -(-total // PAGE_SIZE))
    if view.page > last:
        view.page = last
        rows, total = queue(repo, tasks, offset=(last - 1) * PAGE_SIZE, **arguments)
    return rows, total


def back_to_queue(request: Request, return_to: str, next_id: int | None, outcome: dict) -> Response:
    """Where a decision answers: JSON for the page's own script (reject with undo), else the same queue view,
    scrolled to the next item."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(outcome, status_code=200 if outcome["ok"] else 409)
    flash(request, "ok" if outcome["ok"] else "error", outcome["message"])
    anchor = f"#item-{next_id}" if next_id else ""
    return RedirectResponse(f"/review{QueueView.from_query(return_to).query()}{anchor}", status_code=303)


def form_text(text: str | None) -> str | None:
    """A textarea's text as typed: browsers send its line breaks as CRLF."""
    return text.replace("\r\n", "\n") if text is not None else None


def unchanged_edit(row: AiResult | None, text: str | None) -> bool:
    """An edit box sent back as it was shown (markers aside) is an approval, held to the approval's rules."""
    if row is None or text is None:
        return False
    shown = {display_text(row).strip(), draft_text(row).strip(), without_citations(draft_text(row))}
    return text.strip() in shown or without_citations(text) in shown


def decide_and_queue_delivery(
    caller: Caller,
    background: BackgroundTasks,
    result_id: int,
    review: ReviewRequest,
    precheck: Callable[[AiResult], None] | None = None,
) -> AiResult:
    """Decide in one transaction (after ``precheck`` of the current row, when given); an approved reply is handed to
    delivery (webhook) once the decision committed."""
    with caller.repo() as repo:
        current = repo.get(AiResult, result_id)
        if precheck is not None and current is not None:
            precheck(current)
        row = decide(repo, result_id, review, actor=caller.principal.actor,
                     tasks=caller.principal.reviewable_tasks(), may_override=False)  # fmt: skip
        deliverable = review.decision is not Decision.reject and prepare_delivery(repo, row.id) is not None
    if deliverable:
        background.add_task(caller.services.deliver, caller.principal.workspace_slug, result_id)
    return row


@router.post("/review/{result_id}/decide")
def decide_page(
    result_id: IdPath,
    request: Request,
    caller: PageCaller,
    background: BackgroundTasks,
    decision: Annotated[Decision, Form()],
    version: Annotated[int, Form()],
    csrf: Annotated[str, Form()],
    text: Annotated[str | None, Form()] = None,
    reason: Annotated[str | None, Form()] = None,
    confirm_commitments: Annotated[bool, Form()] = False,
    return_to: Annotated[str, Form(max_length=600)] = "",
    next_id: Annotated[int | None, Form()] = None,
) -> Response:
    check_csrf(request, csrf)
    text = form_text(text)
    try:
        if decision is Decision.reject and not (reason or "").strip():
            raise InvalidInput("reason: say why you reject it (the reason goes to the audit log)")
        with caller.repo() as repo:
            if decision is Decision.edit and unchanged_edit(repo.get(AiResult, result_id), text):
                decision = Decision.approve
        review = ReviewRequest(decision=decision, version=version, text=text, reason=reason,
                               confirm_commitments=confirm_commitments)  # fmt: skip
        decide_and_queue_delivery(caller, background, result_id, review)
        past = {"approve": "approved", "edit": "edited and approved", "reject": "rejected"}[decision.value]
        outcome = {"ok": True, "message": f"AI result {result_id} {past}.", "id": result_id}
    except CopilotError as error:
        outcome = {"ok": False, "message": str(error), "id": result_id}
    return back_to_queue(request, return_to, next_id, outcome)


def only_low_risk(row: AiResult) -> None:
    if not low_risk(row):
        raise PermissionDenied("needs a decision of its own (commitment, failed guard or unchanged)")


@router.post("/review/batch")
async def batch_page(request: Request, caller: PageCaller, background: BackgroundTasks) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    chosen = parse_batch_items([str(value) for value in form.getlist("item")])
    approved, refused = [], []
    for result_id, version in chosen:
        try:
            review = ReviewRequest(decision=Decision.approve, version=version)
            decide_and_queue_delivery(caller, background, result_id, review, precheck=only_low_risk)
            approved.append(result_id)
        except CopilotError as error:
            refused.append(f"{result_id} ({error})")
    text = f"Approved {len(approved)} item(s)." + (f" Not approved: {'; '.join(refused)}" if refused else "")
    outcome = {"ok": not refused, "message": text}
    return back_to_queue(request, str(form.get("return_to", "")), None, outcome)
