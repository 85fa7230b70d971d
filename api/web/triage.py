"""Triage and knowledge pages: a ticket's triage panel (label, urgency with reasons, language, routing with
evidence, apply / dismiss for a person) and the knowledge page (gap report, KB drafts from recurring questions, how
often triage suggestions were accepted per topic).

The panel is ``templates/_triage.html``: a page that shows a ticket includes it with ``triage_panel(repo, ticket)``
as ``triage`` in its context (``/tickets/{id}/triage`` shows it on its own).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.schemas import resolve_ref
from api.web.common import PageCaller, check_csrf, render
from api.web.records import ticket_url
from copilot.auth import Permission
from copilot.errors import CopilotError, NotFound
from copilot.store import Repo
from copilot.store.models import AiResult, AiStatus, Priority, Ticket
from copilot.tasks.knowledge_gaps import knowledge_gaps
from copilot.tasks.triage import latest_triage
from copilot.tasks.triage_apply import ApplyRequest, apply_triage, current_values, dismiss_triage, triage_stats
from copilot.tasks.triage_labels import triage_settings, workspace_labels

router = APIRouter(include_in_schema=False)


def triage_panel(repo: Repo, ticket: Ticket) -> dict[str, Any]:
    """What ``_triage.html`` shows for a ticket: its latest triage, the fields now, and the choices to apply."""
    row = latest_triage(repo, ticket.id)
    evidence_ids = [e["ticket_id"] for e in (row.content["result"]["routing"]["evidence"] if row else [])]
    external = {
        t.id: t.external_id or str(t.id) for t in repo.all(repo.select(Ticket).where(Ticket.id.in_(evidence_ids)))
    }
    labels = workspace_labels(repo)
    return {
        "ticket_id": ticket.id,
        "row": row,
        "result": row.content.get("result") if row else None,
        "open": row is not None and row.status is AiStatus.completed,
        "current": current_values(repo, ticket),
        "labels": labels,
        "queues": sorted({label.queue for label in labels}),
        "priorities": [p.value for p in Priority],
        "evidence_names": external,
        "auto_apply": triage_settings(repo).auto_apply,
    }


@router.get("/tickets/{ticket_ref}/triage", response_class=HTMLResponse)
def triage_page(ticket_ref: str, request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
        panel = triage_panel(repo, ticket)
    flash = request.session.pop("flash", None)
    return render(request, "triage.html", caller, ticket=ticket, triage=panel, flash=flash)


@router.post("/tickets/{ticket_ref}/triage")
def triage_action(
    ticket_ref: str,
    request: Request,
    caller: PageCaller,
    action: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    result_id: Annotated[int | None, Form()] = None,
    version: Annotated[int | None, Form()] = None,
    topic: Annotated[str | None, Form()] = None,
    queue: Annotated[str | None, Form()] = None,
    assignee: Annotated[str | None, Form()] = None,
    priority: Annotated[str | None, Form()] = None,
    back: Annotated[str | None, Form()] = None,
) -> RedirectResponse:
    """Triage now, apply the suggestion (with the person's changes), or dismiss it."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_support)
    with caller.repo() as repo:
        ticket = resolve_ref(repo, Ticket, ticket_ref)
    try:
        if action == "triage":
            outcome = caller.run_task("ticket_triage", {"ticket_id": ticket.id})
            request.session["flash"] = {"kind": "ok", "text": f"Triaged: {outcome.result.topic.label or 'no topic'}."}
        elif action in ("apply", "dismiss") and result_id:
            caller.principal.require(Permission.review_support)
            with caller.repo() as repo:
                _belongs(repo, result_id, ticket.id)
                if action == "apply":
                    fields = {"topic": topic, "queue": queue, "assignee": assignee, "priority": priority}
                    change = ApplyRequest(
                        version=version, **{k: v.strip() for k, v in fields.items() if v and v.strip()}
                    )
                    applied = apply_triage(repo, result_id, change, actor=caller.principal.actor)
                    what = ", ".join(applied.changes) or "nothing (already so)"
                    request.session["flash"] = {"kind": "ok", "text": f"Applied: {what}."}
                else:
                    dismiss_triage(repo, result_id, actor=caller.principal.actor, version=version)
                    request.session["flash"] = {"kind": "ok", "text": "Suggestion dismissed."}
            caller.services.jobs.start()
        else:
            request.session["flash"] = {"kind": "error", "text": f"unknown action '{action}'"}
    except (CopilotError, ValueError) as error:
        request.session["flash"] = {"kind": "error", "text": str(error)}
    return RedirectResponse(_back(ticket, back), status_code=303)


def _back(ticket: Ticket, back: str | None) -> str:
    """Back where the form came from if that is this ticket's page or triage page, else its triage page."""
    pages = {url + page for url in (ticket_url(ticket), f"/tickets/{ticket.id}") for page in ("", "/triage")}
    return back if back in pages else ticket_url(ticket, "/triage")


def _belongs(repo: Repo, result_id: int, ticket_id: int) -> None:
    row = repo.get(AiResult, result_id)
    if row is None or row.task != "ticket_triage" or row.subject_id != ticket_id:
        raise NotFound(f"no triage result {result_id} for ticket {ticket_id}")


@router.get("/knowledge", response_class=HTMLResponse)
def knowledge_page(request: Request, caller: PageCaller, days: int = 90) -> HTMLResponse:
    caller.principal.require(Permission.read_tickets)
    days = min(max(days, 1), 3650)
    with caller.repo() as repo:
        report = knowledge_gaps(caller.services.embedder, repo, days=days)
        stats = triage_stats(repo) if caller.principal.can(Permission.review_support) else []
        drafts = repo.all(
            repo.select(AiResult)
            .where(AiResult.task == "kb_article_draft", AiResult.status == AiStatus.pending)
            .order_by(AiResult.id.desc())
            .limit(50)
        )
    flash = request.session.pop("flash", None)
    return render(request, "knowledge.html", caller, report=report, drafts=drafts, stats=stats, flash=flash)


@router.post("/knowledge/drafts")
def knowledge_drafts(
    request: Request, caller: PageCaller, csrf: Annotated[str, Form()], include_covered: Annotated[bool, Form()] = False
) -> RedirectResponse:
    """Queue KB drafts for the top recurring questions (they join the review queue)."""
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_support)
    with caller.repo() as repo:
        job = caller.services.jobs.submit(repo, "kb_drafts", {"include_covered": include_covered})
        job_id = job.id
    caller.services.jobs.start()
    request.session["flash"] = {
        "kind": "ok",
        "text": f"Drafting KB articles (job {job_id}); they will wait in the review queue.",
    }
    return RedirectResponse("/knowledge", status_code=303)
