"""Support agents: ticket threads, summaries, reply drafts, tone rewrites, sentiment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.deps import Caller, PageParams, allow
from api.errors import ERROR_RESPONSES
from api.routers.jobs import JobOut, submit_job
from api.schemas import IdField, IdQuery, PageOf, RecordRef, ThreadOut, TicketOut, resolve_ref, thread_out
from api.streaming import stream_task
from copilot.auth import Permission
from copilot.errors import InvalidInput
from copilot.store import Repo
from copilot.store.models import Account, Message, Ticket, TicketStatus
from copilot.tasks.base import TaskOutcome
from copilot.tasks.reply_draft import ReplyDraft
from copilot.tasks.reply_draft import Strategy as DraftStrategy
from copilot.tasks.sentiment import CustomerTrend, MessageSentiment, TicketSentiment, customer_trend, ticket_sentiment
from copilot.tasks.ticket_summary import Strategy as SummaryStrategy
from copilot.tasks.ticket_summary import TicketSummary
from copilot.tasks.tone_rewrite import Rewrite, RewriteParams, draft_to_rewrite
from copilot.tasks.tones import workspace_tones

router = APIRouter(prefix="/v1", tags=["support"], responses=ERROR_RESPONSES)
Reader = Annotated[Caller, Depends(allow(Permission.read_tickets))]
Runner = Annotated[Caller, Depends(allow(Permission.run_support))]
STREAM_RESPONSE = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "With `stream=true`: `token` events, then one `result` event.",
    }
}


class SummaryRequest(BaseModel):
    strategy: SummaryStrategy = "auto"


class DraftRequest(BaseModel):
    strategy: DraftStrategy = "auto"


class SentimentRequest(BaseModel):
    texts: list[Annotated[str, Field(max_length=20_000)]] = Field(min_length=1, max_length=500)


def ticket_or_404(repo: Repo, ticket_ref: int | str) -> Ticket:
    """The ticket an id or external id (``T-1179``) names; 404 otherwise."""
    return resolve_ref(repo, Ticket, ticket_ref)


def ticket_id_of(caller: Caller, ticket_ref: str) -> int:
    with caller.repo() as repo:
        return ticket_or_404(repo, ticket_ref).id


@router.get("/tickets", response_model=PageOf[TicketOut])
def list_tickets(caller: Reader, page: PageParams, status: TicketStatus | None = None, account_id: IdQuery = None):
    with caller.repo() as repo:
        query = repo.select(Ticket)
        if status:
            query = query.where(Ticket.status == status)
        if account_id is not None:
            query = query.where(Ticket.account_id == account_id)
        total = repo.session.scalar(select(func.count()).select_from(query.subquery()))
        rows = repo.all(query.order_by(Ticket.opened_at.desc(), Ticket.id.desc()).offset(page.offset).limit(page.limit))
        return PageOf[TicketOut](
            items=[TicketOut.model_validate(r) for r in rows], total=total, offset=page.offset, limit=page.limit
        )


@router.get("/tickets/{ticket_id}", response_model=ThreadOut)
def get_thread(ticket_id: RecordRef, caller: Reader) -> ThreadOut:
    with caller.repo() as repo:
        ticket = ticket_or_404(repo, ticket_id)
        messages = repo.all(
            repo.select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at, Message.id)
        )
        return thread_out(ticket, messages)


@router.post("/tickets/{ticket_id}/summary", response_model=TaskOutcome[TicketSummary])
def summarize(
    ticket_id: RecordRef, caller: Runner, request: SummaryRequest | None = None
) -> TaskOutcome[TicketSummary]:
    """Summarise the thread (stored as a ``completed`` AI result; it goes ``stale`` when the customer writes again)."""
    strategy = (request or SummaryRequest()).strategy
    return caller.run_task("ticket_summary", {"ticket_id": ticket_id_of(caller, ticket_id), "strategy": strategy})


@router.post("/tickets/{ticket_id}/draft", response_model=TaskOutcome[ReplyDraft], responses=STREAM_RESPONSE)
def draft(
    ticket_id: RecordRef,
    caller: Runner,
    request: DraftRequest | None = None,
    stream: Annotated[bool, Query(description="Stream tokens as Server-Sent Events.")] = False,
):
    """Draft a reply grounded in the thread, history and KB; saved as ``pending`` review, never sent by this call."""
    # a missing ticket is a 404 before anything runs (not an error event inside a 200 stream)
    params = {"ticket_id": ticket_id_of(caller, ticket_id), "strategy": (request or DraftRequest()).strategy}
    if stream:
        return stream_task(lambda on_token=None: caller.run_task("reply_draft", params, on_token))
    return caller.run_task("reply_draft", params)


@router.post("/rewrite", response_model=TaskOutcome[Rewrite], responses=STREAM_RESPONSE)
def rewrite_text(
    request: RewriteParams,
    caller: Runner,
    stream: Annotated[bool, Query(description="Stream tokens as Server-Sent Events.")] = False,
):
    """Rewrite a reply in another tone; facts (numbers, dates, links, names, signature) must survive."""
    if request.text is None and request.draft_id is None:
        raise InvalidInput("text: give the text to rewrite or a draft_id")
    if request.draft_id is not None:
        with caller.repo() as repo:
            draft_to_rewrite(repo, request.draft_id)  # a reply draft this role may read, checked before streaming
    if stream:
        return stream_task(lambda on_token=None: caller.run_task("tone_rewrite", request, on_token))
    return caller.run_task("tone_rewrite", request)


@router.get("/tones", response_model=dict[str, str])
def tones(caller: Runner) -> dict[str, str]:
    with caller.repo() as repo:
        return workspace_tones(repo)


@router.get("/tickets/{ticket_id}/sentiment", response_model=TicketSentiment)
def ticket_sentiment_route(ticket_id: RecordRef, caller: Reader) -> TicketSentiment:
    with caller.repo() as repo:
        return ticket_sentiment(repo, caller.services.sentiment, ticket_or_404(repo, ticket_id).id)


@router.get("/accounts/{account_id}/sentiment", response_model=CustomerTrend)
def account_sentiment(account_id: RecordRef, caller: Reader) -> CustomerTrend:
    with caller.repo() as repo:
        account = resolve_ref(repo, Account, account_id)
        return customer_trend(repo, caller.services.sentiment, account_id=account.id)


@router.post("/sentiment", response_model=list[MessageSentiment])
def classify(request: SentimentRequest, caller: Runner) -> list[MessageSentiment]:
    with caller.repo() as repo:
        classifier = caller.services.sentiment.for_workspace(repo)
    return classifier.classify(request.texts)


class BulkSummaryRequest(BaseModel):
    ticket_ids: list[IdField] = Field(min_length=1, max_length=2_000, description="At most 2,000; repeats count once.")


@router.post("/tickets/summaries", response_model=JobOut, status_code=202)
def bulk_summaries(request: BulkSummaryRequest, caller: Runner, response: Response) -> JobOut:
    """Summarise many tickets as a background job; poll ``/v1/jobs/{id}``."""
    items = [{"ticket_id": ticket_id} for ticket_id in dict.fromkeys(request.ticket_ids)]  # each ticket once
    return submit_job(caller, response, "task_batch", {"task": "ticket_summary", "items": items})
