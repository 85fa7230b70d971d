"""The call page (transcript with speakers and times, the recap and action items, cited turns highlighted) and the
evidence links every sales page uses: a brief's ``call_turn:12`` opens the call scrolled to that turn."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from api.schemas import resolve_ref
from api.web.common import PageCaller, check_csrf, flash, render, take_flash
from copilot.auth import Permission
from copilot.errors import CopilotError
from copilot.store import Repo
from copilot.store.models import Call, CallTurn, Contact, Deal, Message, Note, Ticket
from copilot.tasks.call_summary import latest_summary, load_transcript

router = APIRouter(include_in_schema=False)


def ref_of(row: Call | Deal | Ticket) -> str:
    return quote(row.external_id or str(row.id), safe="")


def call_url(call: Call, turn_id: int | None = None) -> str:
    return f"/calls/{ref_of(call)}" + (f"#turn-{turn_id}" if turn_id is not None else "")


def evidence_href(repo: Repo, source_id: str, tickets_ok: bool) -> str | None:
    """The page an evidence id (``kind:id``) points at, or None when it has no page or the caller cannot read it."""
    kind, _, raw = source_id.partition(":")
    if not raw.isdigit():
        return None
    record_id = int(raw)
    if kind == "call_turn" and (turn := repo.get(CallTurn, record_id)):
        return call_url(turn.call, turn.id)
    if kind == "call" and (call := repo.get(Call, record_id)):
        return call_url(call)
    if kind == "deal" and (deal := repo.get(Deal, record_id)):
        return f"/deals/{ref_of(deal)}"
    if kind == "account":
        return f"/deals?account={record_id}"
    if kind == "note" and (note := repo.get(Note, record_id)) and note.deal is not None:
        return f"/deals/{ref_of(note.deal)}"
    if kind == "contact" and (contact := repo.get(Contact, record_id)) and contact.account_id:
        return f"/deals?account={contact.account_id}"
    if not tickets_ok:
        return None
    if kind == "ticket" and (ticket := repo.get(Ticket, record_id)):
        return f"/tickets/{ref_of(ticket)}"
    if kind == "message" and (message := repo.get(Message, record_id)):
        return f"/tickets/{ref_of(message.ticket)}#m{message.id}"
    return None


def evidence_links(repo: Repo, source_ids: list[str], tickets_ok: bool) -> dict[str, str]:
    links = {}
    for source_id in dict.fromkeys(source_ids):
        if href := evidence_href(repo, source_id, tickets_ok):
            links[source_id] = href
    return links


def overdue_days(due: date | None, today: date) -> int:
    return (today - due).days if due and due < today else 0


@router.get("/calls/{call_ref}", response_class=HTMLResponse)
def call_page(call_ref: str, request: Request, caller: PageCaller) -> HTMLResponse:
    caller.principal.require(Permission.read_sales)
    with caller.repo() as repo:
        call = resolve_ref(repo, Call, call_ref)
        transcript = load_transcript(call)
        row, summary = latest_summary(repo, call.id) or (None, None)
        deal, account = call.deal, call.account
    cited = set(summary.cited_ids()) if summary else set()
    return render(
        request,
        "call.html",
        caller,
        call=call,
        url=call_url(call),
        deal=deal,
        deal_url=f"/deals/{ref_of(deal)}" if deal else None,
        account=account,
        transcript=transcript,
        row=row,
        summary=summary,
        cited=cited,
        today=datetime.now(UTC).date(),
        overdue_days=overdue_days,
        flash=take_flash(request),
    )


@router.post("/calls/{call_ref}/summary")
def summary_action(
    call_ref: str, request: Request, caller: PageCaller, csrf: Annotated[str, Form()]
) -> RedirectResponse:
    check_csrf(request, csrf)
    caller.principal.require(Permission.run_sales)
    with caller.repo() as repo:
        call = resolve_ref(repo, Call, call_ref)
    try:
        caller.run_task("call_summary", {"call_id": call.id})
        flash(request, "ok", "Call summarised; the summary waits for review.")
    except CopilotError as error:
        flash(request, "error", str(error))
    return RedirectResponse(call_url(call), status_code=303)
