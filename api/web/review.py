"""The review queue page: each draft beside its thread, sources and guard verdicts;
approve, edit, reject, batch approve."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.schemas import IdPath
from api.web.common import PageCaller, check_csrf, render
from copilot.delivery import prepare_delivery
from copilot.errors import CopilotError, InvalidInput, PermissionDenied
from copilot.guards import commitment_patterns
from copilot.review import (
    Decision,
    ReviewRequest,
    blocking_guards,
    commitments,
    decide,
    draft_text,
    low_risk,
    queue,
)
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, Message, Ticket

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20
THREAD_TAIL = 8


def parse_batch_items(values: list[str]) -> list[tuple[int, int]]:
    """``id:version`` pairs from the batch form; anything else is a 422 naming the bad value."""
    pairs = []
    for value in values:
        if not re.fullmatch(r"\d{1,18}:\d{1,9}", value):
            raise InvalidInput(f"item: expected <result id>:<version>, got '{value[:40]}'")
        result_id, version = value.split(":")
        pairs.append((int(result_id), int(version)))
    return pairs


def review_item(repo: Repo, row: AiResult) -> dict:
    """What the reviewer sees for one result: its text, the thread or original it answers, sources, verdicts."""
    ticket = repo.get(Ticket, row.subject_id) if row.subject_kind == "ticket" and row.subject_id else None
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
    return {
        "row": row,
        "text": draft_text(row),
        "ticket": ticket,
        "messages": list(reversed(messages)),
        "original": result.get("original"),
        "sources": result.get("sources") or [],
        "verdicts": row.guard_verdicts,
        "commitments": commitments(row),
        "blocked": blocking_guards(row),
        "low_risk": low_risk(row),
        "fallback": row.content.get("fallback_reason") if row.content.get("used_fallback") else None,
    }


@router.get("/review", response_class=HTMLResponse)
def review_page(request: Request, caller: PageCaller, task: str | None = None, page: int = 1) -> HTMLResponse:
    tasks = [t for t in caller.principal.reviewable_tasks() if task in (None, "", t)]
    if not caller.principal.reviewable_tasks():
        raise PermissionDenied(f"role '{caller.principal.role.value}' may not review AI results")
    with caller.repo() as repo:
        rows, total = queue(
            repo, tasks, status=AiStatus.pending, offset=(max(page, 1) - 1) * PAGE_SIZE, limit=PAGE_SIZE
        )
        items = [review_item(repo, row) for row in rows]
    flash = request.session.pop("flash", None)
    return render(
        request,
        "review.html",
        caller,
        items=items,
        total=total,
        page=max(page, 1),
        pages=max(1, -(-total // PAGE_SIZE)),
        task=task or "",
        tasks=caller.principal.reviewable_tasks(),
        commitment_patterns=commitment_patterns(),
        flash=flash,
    )


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
) -> RedirectResponse:
    check_csrf(request, csrf)
    try:
        with caller.repo() as repo:
            current = repo.get(AiResult, result_id)
            if (
                decision is Decision.edit
                and current is not None
                and (text or "").strip() == draft_text(current).strip()
            ):
                decision = Decision.approve  # an untouched edit box is an approval, held to the approval's rules
            review = ReviewRequest(decision=decision, version=version, text=text, reason=reason,
                                   confirm_commitments=confirm_commitments)  # fmt: skip
            row = decide(repo, result_id, review, actor=caller.principal.actor,
                         tasks=caller.principal.reviewable_tasks(), may_override=False)  # fmt: skip
            deliverable = decision is not Decision.reject and prepare_delivery(repo, row.id) is not None
        if deliverable:
            background.add_task(caller.services.deliver, caller.principal.workspace_slug, result_id)
        past = {"approve": "approved", "edit": "edited and approved", "reject": "rejected"}[decision.value]
        request.session["flash"] = {"kind": "ok", "text": f"AI result {result_id} {past}."}
    except CopilotError as error:
        request.session["flash"] = {"kind": "error", "text": str(error)}
    return RedirectResponse("/review", status_code=303)


@router.post("/review/batch")
async def batch_page(request: Request, caller: PageCaller, background: BackgroundTasks) -> RedirectResponse:
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    chosen = parse_batch_items([str(value) for value in form.getlist("item")])
    approved, refused = [], []
    for result_id, version in chosen:
        try:
            with caller.repo() as repo:
                row = repo.get(AiResult, result_id)
                if row is not None and not low_risk(row):
                    raise PermissionDenied("needs a decision of its own (commitment, failed guard or unchanged)")
                decide(
                    repo,
                    result_id,
                    ReviewRequest(decision=Decision.approve, version=version),
                    actor=caller.principal.actor,
                    tasks=caller.principal.reviewable_tasks(),
                )
                if prepare_delivery(repo, result_id) is not None:
                    background.add_task(caller.services.deliver, caller.principal.workspace_slug, result_id)
            approved.append(result_id)
        except CopilotError as error:
            refused.append(f"{result_id} ({error})")
    text = f"Approved {len(approved)} item(s)." + (f" Not approved: {'; '.join(refused)}" if refused else "")
    request.session["flash"] = {"kind": "error" if refused else "ok", "text": text}
    return RedirectResponse("/review", status_code=303)
