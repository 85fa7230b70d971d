"""The search page behind the navigation bar's search box: the API's hybrid search, with the same role limits, and
each hit linked to the page it belongs to."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from api.deps import Caller
from api.routers.search import readable_kinds, run_search, searchable_kinds
from api.schemas import resolve_ref
from api.web.common import PageCaller, render
from copilot.auth import Permission
from copilot.store import Repo
from copilot.store.models import Account, Call, Deal, KbArticle, Message, Note, NpsResponse, Ticket
from retrieval.chunking import INDEXED_KINDS
from retrieval.search import SearchHit

router = APIRouter(include_in_schema=False)
KIND_LABELS = {
    "ticket": "Ticket",
    "message": "Message",
    "kb_article": "KB article",
    "call": "Call",
    "note": "Note",
    "nps_response": "NPS answer",
}
PERIODS = [("7", "last 7 days"), ("30", "last 30 days"), ("90", "last 90 days"), ("365", "last year")]


class HitLink(BaseModel):
    href: str | None
    text: str


def ref_of(row: Ticket | Deal) -> str:
    return quote(row.external_id or str(row.id), safe="")


def hit_links(repo: Repo, caller: Caller, hits: list[SearchHit]) -> dict[str, HitLink]:
    """Where each hit lives: a ticket (a message's, scrolled to it), a call, a deal (a note's), else a title."""
    links: dict[str, HitLink] = {}
    tickets_ok = caller.principal.can(Permission.read_tickets)
    for hit in hits:
        link = link_for(repo, hit, tickets_ok)
        if link is not None:
            links[hit.chunk_id] = link
    return links


def link_for(repo: Repo, hit: SearchHit, tickets_ok: bool) -> HitLink | None:
    kind, record_id = hit.record_kind, hit.record_id
    if kind == "ticket" and (ticket := repo.get(Ticket, record_id)):
        return HitLink(href=f"/tickets/{ref_of(ticket)}", text=f"{ticket.external_id or ticket.id}: {ticket.subject}")
    if kind == "message" and (message := repo.get(Message, record_id)):
        ticket = message.ticket
        href = f"/tickets/{ref_of(ticket)}#m{message.id}"
        return HitLink(href=href, text=f"{ticket.external_id or ticket.id}: {ticket.subject} (message #{message.id})")
    if kind == "call" and (call := repo.get(Call, record_id)):
        return HitLink(href=f"/calls/{quote(call.external_id or str(call.id), safe='')}", text=f"call: {call.title}")
    if kind == "note" and (note := repo.get(Note, record_id)):
        if note.deal is not None:
            return HitLink(href=f"/deals/{ref_of(note.deal)}", text=f"note on {note.deal.name}")
        ticket = repo.get(Ticket, note.ticket_id) if note.ticket_id and tickets_ok else None
        return HitLink(href=f"/tickets/{ref_of(ticket)}" if ticket else None, text=f"note by {note.author or '-'}")
    if kind == "nps_response" and (response := repo.get(NpsResponse, record_id)):
        return HitLink(href=None, text=f"score {response.score} · {response.external_id or response.id}")
    if kind == "kb_article" and (article := repo.get(KbArticle, record_id)):
        return HitLink(href=None, text=article.title)
    return None


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    caller: PageCaller,
    q: Annotated[str, Query(max_length=500)] = "",
    kind: Annotated[list[str] | None, Query()] = None,
    account: str = "",
    days: str = "",
) -> HTMLResponse:
    allowed = [k for k in readable_kinds(caller) if k in INDEXED_KINDS]
    kinds = searchable_kinds(caller, kind or allowed)  # the API's rule: only kinds the role may read
    period = int(days) if days.isdigit() and 1 <= int(days) <= 3650 else None
    with caller.repo() as repo:
        account_row = resolve_ref(repo, Account, account) if account else None
        accounts = repo.all(repo.select(Account).order_by(Account.name).limit(500))
    hits: list[SearchHit] = []
    links: dict[str, HitLink] = {}
    if q.strip():
        hits = run_search(caller, q.strip(), kinds, account_row.id if account_row else None, period, 20)
        with caller.repo() as repo:
            links = hit_links(repo, caller, hits)
    return render(
        request,
        "search.html",
        caller,
        q=q.strip(),
        hits=hits,
        links=links,
        allowed=allowed,
        kinds=kinds,
        kinds_asked=kind or [],
        kind_labels=KIND_LABELS,
        accounts=accounts,
        account=account,
        account_name=account_row.name if account_row else None,
        days=days,
        periods=PERIODS,
    )
