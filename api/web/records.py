"""Ticket pages (thread, summary, sentiment timeline, draft and tone buttons) and deal pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.schemas import IdPath
from api.web.common import PageCaller, check_csrf, render
from copilot.auth import Permission
from copilot.errors import CopilotError, NotFound
from copilot.store.models import AiResult, AiStatus, Message, Ticket
from copilot.tasks.sentiment import ticket_sentiment
from copilot.tasks.tone_rewrite import workspace_tones

router = APIRouter(include_in_schema=False)


@router.get("/tickets", response_class=HTMLResponse)
def tickets_page(request: Request, caller: PageCaller, page: int = 1) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    page = max(page, 1)
    with caller.repo() as repo:
        rows = repo.all(
            repo.select(Ticket).order_by(Ticket.opened_at.desc(), Ticket.id.desc()).offset((page - 1) * 50).limit(50)
        )
        pending = {
            r.subject_id
            for r in repo.all(
                repo.select(AiResult).where(AiResult.status == AiStatus.pending, AiResult.subject_kind == "ticket")
            )
        }
    return render(request, "tickets.html", caller, tickets=rows, page=page, pending=pending)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(ticket_id: IdPath, request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    with caller.repo() as repo:
        ticket = repo.get(Ticket, ticket_id)
        if ticket is None:
            raise NotFound(f"no ticket {ticket_id} in this workspace")
        messages = repo.all(
            repo.select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at, Message.id)
        )
        results = repo.all(
            repo.select(AiResult)
            .where(AiResult.subject_kind == "ticket", AiResult.subject_id == ticket.id)
            .order_by(AiResult.id.desc())
        )
        summary = next((r for r in results if r.task == "ticket_summary"), None)
        draft = next((r for r in results if r.task == "reply_draft"), None)
        sentiment = ticket_sentiment(repo, caller.services.sentiment, ticket.id)
        tones = sorted(workspace_tones(repo))
    flash = request.session.pop("flash", None)
    return render(
        request,
        "ticket.html",
        caller,
        ticket=ticket,
        messages=messages,
        summary=summary,
        draft=draft,
        sentiment=sentiment,
        tones=tones,
        flash=flash,
    )


@router.post("/tickets/{ticket_id}/act")
def ticket_action(
    ticket_id: IdPath,
    request: Request,
    caller: PageCaller,
    action: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    tone: Annotated[str | None, Form()] = None,
    draft_id: Annotated[int | None, Form()] = None,
) -> RedirectResponse:
    """Summarise, draft, or rewrite the latest draft in a tone (the rewrite joins the review queue)."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_support)
    try:
        if action == "summarize":
            caller.run_task("ticket_summary", {"ticket_id": ticket_id})
            request.session["flash"] = {"kind": "ok", "text": "Summary refreshed."}
        elif action == "draft":
            outcome = caller.run_task("reply_draft", {"ticket_id": ticket_id})
            request.session["flash"] = {
                "kind": "ok",
                "text": f"Draft {outcome.ai_result_id} is waiting in the review queue.",
            }
        elif action == "rewrite" and tone and draft_id:
            outcome = caller.run_task("tone_rewrite", {"tone": tone, "draft_id": draft_id})
            request.session["flash"] = {
                "kind": "ok",
                "text": f"{tone.capitalize()} rewrite {outcome.ai_result_id} is waiting in the review queue.",
            }
        else:
            request.session["flash"] = {"kind": "error", "text": f"unknown action '{action}'"}
    except CopilotError as error:
        request.session["flash"] = {"kind": "error", "text": str(error)}
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)
